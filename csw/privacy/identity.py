"""Where the raw streams keep a customer's identifiers, and one person's identifiers.

`STREAMS` declares, for every raw stream (`<platform>__<stream>`):

- `ids`: JSON paths that hold the customer's platform id (the CRM id for the CRM feeds);
  the scan collects these values as the raw identifiers to look for in every output;
- `conversation`: the JSON path of the conversation the record belongs to, so records that
  do not name the customer (Meiqia messages, Zendesk comments and ticket events, Sobot
  agent messages) still go with the customer's conversations;
- `pii`: other customer identifiers the scan collects (the CRM's union id and phone hash).

`None` means the stream holds no customer data (agents, agent status, queue counts).
A test checks that every declared stream is listed here, so a new platform cannot slip by.

A record belongs to a person when any of its values (any field, at any depth: the API's and
the console's shapes alike) is one of the person's identifiers, or when its conversation is
one of theirs. Identifiers are long random strings, so an exact value match is safe; Taobao
writes a buyer nick as `cntaobao<nick>`, so both spellings are identifiers.

Hashes are the marts' own (`hash_id` in dbt, `alerting.realtime.hash_customer`):
sha256 of `<CSW_HASH_SALT>|<platform>|<id>`, and `crm_person` for a CRM id (`person_key`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alerting.realtime import hash_customer, label

CRM = "crm"
PERSON_NAMESPACE = "crm_person"  # dbt: hash_id(crm_customer_id, 'crm_person') = person_key
CONVERSATION_NAMESPACE = "{platform}:conversation"
ID_PREFIXES = {"taobao": "cntaobao"}  # Taobao's wangwang ids: cntaobao<buyer nick>


class PrivacyError(Exception):
    """A privacy command cannot run; the message says why and what to do."""


class PrivacyUsageError(PrivacyError):
    """The command was given a bad person or option (exit code 2)."""


@dataclass(frozen=True)
class CustomerFields:
    ids: tuple[str, ...] = ()
    conversation: str | None = None
    pii: tuple[str, ...] = ()


def _session(ids: tuple[str, ...], conversation: str) -> CustomerFields:
    return CustomerFields(ids=ids, conversation=conversation)


_CONSOLE = {  # Douyin and Pinduoduo: console exports with the same columns
    "sessions": _session(("customer_id",), "session_id"),
    "messages": _session(("customer_id",), "session_id"),
    "ratings": _session(("customer_id",), "session_id"),
    "agents": None,
    "agent_status": None,
}

STREAMS: dict[str, CustomerFields | None] = {
    "crm__customers": CustomerFields(ids=("customer_id",), pii=("union_id", "phone_hash")),
    "crm__identities": CustomerFields(ids=("customer_id", "platform_user_id")),
    "crm__orders": CustomerFields(ids=("customer_id",)),
    "wecom__messages": CustomerFields(ids=("external_userid", "event.external_userid")),
    "wecom__servicers": None,
    "wecom__ratings": CustomerFields(ids=("customer_id",)),  # console report: no session id
    "wechat_oa__messages": CustomerFields(ids=("openid",)),
    "wechat_oa__agents": None,
    "wechat_oa__agent_status": None,
    "wechat_oa__queue": None,  # waiting openids, if any, still make the snapshot the person's
    "taobao__messages": _session(("to_id",), "session_id"),
    "taobao__ratings": _session(("eval_recer",), "session_id"),
    "taobao__agents": None,
    "taobao__agent_status": None,
    "jd__sessions": _session(("customer",), "sid"),
    "jd__messages": _session(("customer",), "sid"),
    "jd__ratings": _session(("customer",), "sid"),
    "jd__agents": None,
    "jd__agent_status": None,
    "jd__queue": None,
    "meiqia__conversations": _session(("track_id",), "conv_id"),
    "meiqia__messages": _session((), "conv_id"),
    "meiqia__agents": None,
    "meiqia__agent_status": None,
    "sobot__sessions": _session(("partnerid",), "cid"),
    "sobot__messages": _session((), "cid"),  # `sender` is the customer or an agent
    "sobot__ratings": _session(("partnerid",), "cid"),
    "sobot__agents": None,
    "sobot__agent_status": None,
    "zendesk__tickets": _session(("requester_id",), "id"),
    "zendesk__messages": _session((), "ticket_id"),  # `author_id` is the customer or an agent
    "zendesk__ticket_events": _session((), "ticket_id"),
    "zendesk__satisfaction_ratings": _session(("requester_id",), "ticket_id"),
    "zendesk__agents": None,
    **{f"{p}__{s}": rule for p in ("douyin", "pinduoduo") for s, rule in _CONSOLE.items()},
}


def platform_of(table: str) -> str:
    return table.split("__", 1)[0]


def rule(table: str) -> CustomerFields | None:
    """The stream's declaration; an undeclared stream is still matched on its values."""
    return STREAMS.get(table)


def get_path(record: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(record, dict):
            return None
        record = record.get(part)
    return record


def leaves(value: Any) -> Iterator[str]:
    """Every scalar of a JSON value, as text (booleans and nulls are never identifiers)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)


def strip_prefix(platform: str, value: str) -> str:
    prefix = ID_PREFIXES.get(platform)
    return value[len(prefix) :] if prefix and value.startswith(prefix) else value


def spellings(platform: str, value: str) -> set[str]:
    prefix = ID_PREFIXES.get(platform)
    return {value, prefix + value} if prefix else {value}


def conversation_hash(platform: str, conversation: str) -> str:
    return hash_customer(CONVERSATION_NAMESPACE.format(platform=platform), conversation)


@dataclass
class Person:
    """One person: their platform ids (`crm` holds CRM ids) and, once found, their
    conversations per platform."""

    ids: dict[str, set[str]]
    conversations: dict[str, set[str]] = field(default_factory=dict)

    def tokens(self) -> set[str]:
        """Every identifier value, in every spelling the raw data uses."""
        return {s for p, values in self.ids.items() for v in values for s in spellings(p, v)}

    def keys(self) -> set[str]:
        """The salted hashes the marts and the alert store carry for this person."""
        out = set()
        for platform, values in self.ids.items():
            namespace = PERSON_NAMESPACE if platform == CRM else platform
            out |= {hash_customer(namespace, v) for v in values}
        return out

    def conversation_keys(self) -> set[str]:
        return {conversation_hash(p, c) for p, convs in self.conversations.items() for c in convs}

    def label(self) -> str:
        """A salted hash naming the request in logs: the person key, else the customer key."""
        crm = sorted(self.ids.get(CRM, ()))
        if crm:
            return hash_customer(PERSON_NAMESPACE, crm[0])
        platform = sorted(p for p in self.ids if self.ids[p])[0]
        return hash_customer(platform, sorted(self.ids[platform])[0])

    def matches(self, table: str, record: Any, tokens: set[str] | None = None) -> bool:
        tokens = self.tokens() if tokens is None else tokens
        fields = rule(table)
        if fields and fields.conversation:
            conv = get_path(record, fields.conversation)
            if conv is not None and str(conv) in self.conversations.get(platform_of(table), ()):
                return True
        return any(leaf in tokens for leaf in leaves(record))

    def note_conversation(self, table: str, record: Any) -> None:
        fields = rule(table)
        if fields and fields.conversation:
            conv = get_path(record, fields.conversation)
            if conv is not None:
                self.conversations.setdefault(platform_of(table), set()).add(str(conv))


def parse_customer(spec: str, platforms: Iterable[str]) -> tuple[str, str]:
    """`<platform>:<id>` -> (platform, id), with the id as the CRM feed spells it."""
    platform, sep, value = spec.partition(":")
    known = sorted(platforms)
    if not sep or not value.strip():
        raise PrivacyUsageError(
            f"--customer {spec!r}: write <platform>:<id>, e.g. wecom:wmXXXX (platforms: {', '.join(known)})"
        )
    if platform not in known:
        raise PrivacyUsageError(f"--customer {platform!r}: unknown platform; known: {', '.join(known)}")
    return platform, strip_prefix(platform, value.strip())


def resolve(
    identities: Iterable[dict], customer: tuple[str, str] | None = None, crm_id: str | None = None
) -> Person:
    """One person from a platform id or a CRM id, through the CRM mapping feed: every
    platform id mapped to the same CRM customer, and the CRM id itself."""
    if (customer is None) == (crm_id is None):
        raise PrivacyUsageError(
            "name the person by exactly one of --customer <platform>:<id> or --crm-id <id>"
        )
    rows = [r for r in identities if r.get("customer_id") and r.get("channel") and r.get("platform_user_id")]
    crm_ids = {crm_id} if crm_id else set()
    if customer is not None:
        platform, value = customer
        crm_ids |= {
            r["customer_id"]
            for r in rows
            if r["channel"] == platform and strip_prefix(platform, str(r["platform_user_id"])) == value
        }
    ids: dict[str, set[str]] = {CRM: set(crm_ids)} if crm_ids else {}
    if customer is not None:
        ids.setdefault(customer[0], set()).add(customer[1])
    for r in rows:
        if r["customer_id"] in crm_ids:
            platform = r["channel"]
            ids.setdefault(platform, set()).add(strip_prefix(platform, str(r["platform_user_id"])))
    return Person(ids=ids)


__all__ = [
    "CRM",
    "STREAMS",
    "CustomerFields",
    "Person",
    "PrivacyError",
    "conversation_hash",
    "get_path",
    "hash_customer",
    "label",
    "leaves",
    "parse_customer",
    "platform_of",
    "resolve",
    "rule",
    "spellings",
    "strip_prefix",
]
