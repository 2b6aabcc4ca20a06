"""Request bodies of the broker API (pydantic models; they also shape /openapi.json)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

_ID = r"^[A-Za-z0-9_.:-]+$"


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(min_length=1, max_length=64)
    cluster: str = Field(min_length=1, max_length=64)
    ttl: int | str = Field(description="seconds, or a duration such as 15m / 1h")
    reason: str = Field("", max_length=1024)
    agent: bool = False
    agent_name: str = Field("", max_length=128)
    break_glass: bool = False


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "deny"]
    comment: str = Field("", max_length=1024)


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    argv: list[Annotated[str, Field(max_length=65_536)]] = Field(min_length=1, max_length=4096)
    namespace: str = Field("", max_length=253)
    manifests: list[str] = Field(default_factory=list, max_length=64)
    reason: str = Field("", max_length=1024)
    unmask: bool = Field(
        False,
        description="the output is to be shown without masking (`jitkube kubectl --unmask`): "
        "the broker applies its policy's `unmask` rule and binds the approval to it",
    )
    agent: str = Field(
        "",
        max_length=128,
        description="the AI agent that runs the command (`--agent`, `JITKUBE_AGENT`, markers): "
        "the broker judges it as an agent's (never more leniently than the person's) and "
        "shows the name to reviewers",
    )


class CommandConsume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fingerprint: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")


class AuditEventIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1, max_length=64, pattern=_ID)
    seq: int = Field(ge=1, le=2**62)
    session_id: str | None = Field(None, max_length=40)


class AuditBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(min_length=1, max_length=128, pattern=_ID)
    events: list[AuditEventIn] = Field(max_length=10_000)
