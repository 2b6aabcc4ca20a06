// A certified OpenID provider (oidc-provider, pinned in package.json) for jitkube's
// interop tests. Started by tests/fixtures/idp.py:
//
//   node tests/idp/server.mjs CONFIG.json
//
// CONFIG.json: {cert, key, path?, audience?, resource?, interval?, accessTokenTTL?,
//               deviceCodeTTL?, users: {name: {email, groups}},
//               publicClientId, ciClient?: {id, secret, groups}}
// Prints one line `ISSUER <issuer>` on stdout once it listens (port 0, HTTPS, under
// `path`, default /oidc). Form field names of the device pages depend on the pinned
// version: the Python page walker in tests/fixtures/idp.py relies on them.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const mount = (config.path ?? '/oidc').replace(/\/$/, '');
const audience = config.audience ?? 'jitkube';
// Resource indicators must be absolute URIs; the audience stays the plain client name.
const resource = config.resource ?? `urn:${audience}`;
const resourceScope = config.resourceScope ?? audience;
const interval = config.interval ?? 1;
const users = config.users ?? {};
const ciClient = config.ciClient;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'test-rs256' };

const clients = [
  {
    client_id: config.publicClientId ?? 'jitkube-cli',
    client_name: 'jitkube CLI (public)',
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  },
];
if (ciClient) {
  clients.push({
    client_id: ciClient.id,
    client_secret: ciClient.secret,
    client_name: 'jitkube CI (confidential)',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  });
}

// The same identity claims as jitkube's sandbox provider puts in its access tokens.
function identityClaims(token) {
  if (token.accountId) {
    const user = users[token.accountId] ?? {};
    return { email: user.email ?? `${token.accountId}@example.test`, groups: user.groups ?? [] };
  }
  if (ciClient && token.clientId === ciClient.id) return { groups: ciClient.groups ?? [] };
  return { groups: [] };
}

const server = https.createServer({
  cert: readFileSync(config.cert),
  key: readFileSync(config.key),
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `https://127.0.0.1:${port}${mount}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username'],
      groups: ['groups'],
    },
    conformIdTokenClaims: false,
    async findAccount(_ctx, sub) {
      const user = users[sub] ?? { email: `${sub}@example.test`, groups: [] };
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            email: user.email,
            email_verified: true,
            name: sub,
            preferred_username: sub,
            groups: user.groups,
          };
        },
      };
    },
    // Skip the consent page: every client here is first-party.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      const grant = grantId
        ? await ctx.oidc.provider.Grant.find(grantId)
        : new ctx.oidc.provider.Grant({
          clientId: ctx.oidc.client.clientId,
          accountId: ctx.oidc.session.accountId,
        });
      grant.addOIDCScope('openid offline_access profile email groups');
      grant.addResourceScope(resource, resourceScope);
      await grant.save();
      return grant;
    },
    extraTokenClaims: async (_ctx, token) => identityClaims(token),
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: Boolean(ciClient) },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== resource) throw new Provider.errors.InvalidTarget();
          return {
            scope: resourceScope,
            audience,
            accessTokenFormat: 'jwt',
            accessTokenTTL: config.accessTokenTTL ?? 600,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      DeviceCode: config.deviceCodeTTL ?? 300,
      AccessToken: config.accessTokenTTL ?? 600,
      ClientCredentials: config.accessTokenTTL ?? 600,
      IdToken: 600,
      RefreshToken: 3600,
      Grant: 3600,
      Session: 3600,
      Interaction: 600,
    },
  });

  // oidc-provider omits `interval` (RFC 8628 default 5 s); tests want quick polling.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'device_authorization' && ctx.status === 200 && ctx.body) {
      ctx.body = { ...ctx.body, interval };
    }
  });

  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === mount || req.url.startsWith(`${mount}/`) || req.url.startsWith(`${mount}?`)) {
      // Mount under `mount` the way express does: oidc-provider derives its URLs from
      // originalUrl minus url.
      req.originalUrl = req.url;
      req.url = req.url.slice(mount.length) || '/';
      callback(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not_found"}');
  });
  process.stdout.write(`ISSUER ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
