#!/usr/bin/env bash
# Map jitkube's session roles to Kubernetes permissions with EKS access entries.
#
# Run once per cluster by someone who may manage its access entries (not by the broker,
# which needs no EKS permission beyond eks:DescribeCluster). Review it before running:
# it changes who may do what in the cluster. Needs AWS CLI v2 and a cluster whose
# authentication mode includes the EKS API:
#   aws eks update-cluster-config --name "$CLUSTER" \
#     --access-config authenticationMode=API_AND_CONFIG_MAP
#
# Kubernetes RBAC on these roles is the hard boundary (docs/threat-model.md): jitkube's
# policy decides which commands run, the access entry decides what they can touch.
set -euo pipefail

# ---- settings -------------------------------------------------------------------------
ACCOUNT_ID="123456789012"
REGION="eu-west-1"
CLUSTER="prod-eu"                          # the EKS name (eks_cluster_name in broker.yaml)
APP_NAMESPACES="shop,payments"             # where editors and deployers may change things
ROLE_PREFIX="arn:aws:iam::${ACCOUNT_ID}:role"
POLICY_PREFIX="arn:aws:eks::aws:cluster-access-policy"
# ---------------------------------------------------------------------------------------

# The Kubernetes user name carries the STS session name, which the broker sets to
# `jitkube-<session id>`: the cluster's audit log then names the jitkube session.
entry() {  # entry ROLE_NAME K8S_GROUP
  local role_arn="${ROLE_PREFIX}/$1"
  if aws eks describe-access-entry --region "$REGION" --cluster-name "$CLUSTER" \
      --principal-arn "$role_arn" >/dev/null 2>&1; then
    echo "access entry for $1 exists; leaving it as it is"
    return
  fi
  aws eks create-access-entry --region "$REGION" --cluster-name "$CLUSTER" \
    --principal-arn "$role_arn" --type STANDARD \
    --username "$1:{{SessionName}}" \
    --kubernetes-groups "$2"
}

policy() {  # policy ROLE_NAME ACCESS_POLICY SCOPE (cluster | namespace)
  local scope="type=cluster"
  if [ "$3" = "namespace" ]; then
    scope="type=namespace,namespaces=${APP_NAMESPACES}"
  fi
  aws eks associate-access-policy --region "$REGION" --cluster-name "$CLUSTER" \
    --principal-arn "${ROLE_PREFIX}/$1" \
    --policy-arn "${POLICY_PREFIX}/$2" \
    --access-scope "$scope"
}

# viewer: read most objects in every namespace (no Secrets: AmazonEKSViewPolicy leaves
# them out).
entry jitkube-viewer jitkube-viewers
policy jitkube-viewer AmazonEKSViewPolicy cluster

# editor: change workloads in the application namespaces only.
entry jitkube-editor jitkube-editors
policy jitkube-editor AmazonEKSEditPolicy namespace

# deployer (CI): same reach as editor. For a tighter set, associate no access policy and
# bind the Kubernetes group `jitkube-deployers` with your own Role/RoleBinding instead.
entry jitkube-deployer jitkube-deployers
policy jitkube-deployer AmazonEKSEditPolicy namespace

# admin: the whole cluster. For namespace admins use AmazonEKSAdminPolicy with the
# namespace scope instead.
entry jitkube-admin jitkube-admins
policy jitkube-admin AmazonEKSClusterAdminPolicy cluster

echo "done: $(aws eks list-access-entries --region "$REGION" --cluster-name "$CLUSTER" \
  --query 'length(accessEntries)' --output text) access entries on $CLUSTER"
