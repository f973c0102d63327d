"""Settings of the FoneStorm API and of the command worker."""

from __future__ import annotations

import re
from typing import Literal

import phonenumbers
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from bridge.envlists import StringList

#: The ``BRIDGE_WORKER__ALLOWED_DESTINATIONS`` entry that allows every country.
ANY_DESTINATION = "*"
#: Share of the worker's rebalance timeout that in-flight requests get to finish on revoke.
REVOKE_SHARE = 0.8


class FoneStormSettings(BaseModel):
    """The FoneStorm REST API."""

    base_url: str = Field("https://api.fonestorm.com/v2", description="API base URL.")
    token: SecretStr | None = Field(None, description="API token sent as the `token` header.")
    connect_timeout: float = Field(5.0, gt=0, description="TCP/TLS connect timeout (s).")
    read_timeout: float = Field(15.0, gt=0, description="Timeout for a whole API request (s).")
    fonenumbers: StringList = Field(
        default_factory=list,
        description="Our FoneNumbers (comma-separated or a JSON list) to register callbacks "
        "for. When set, the worker places calls only from them, and to their countries and "
        "`BRIDGE_WORKER__ALLOWED_DESTINATIONS`.",
    )
    public_url: str | None = Field(
        None, description="Public URL of the callback endpoint, used when registering callbacks."
    )
    callback_method: Literal["GET", "POST", "JSON"] = Field(
        "JSON", description="Callback delivery method to register."
    )
    register_on_start: bool = Field(
        False,
        description="Register send/receive-notify callbacks when the command worker (`worker` "
        "or `serve`) starts; the `receiver` alone never registers, so it needs no token.",
    )


class WorkerSettings(BaseModel):
    """The place-call command worker."""

    group_id: str = Field("fonestorm-bridge-worker", description="Kafka consumer group.")
    max_in_flight: int = Field(
        64,
        gt=0,
        description="Create-call requests out at once. The worker holds four times as many "
        "commands (writing the ledger and results, in the correlation hold, backing off), so "
        "Kafka round trips do not leave requests idle; at most twice as many have `placing` "
        "written and no answer (each is `in_doubt` if the worker dies).",
    )
    rate_limit: float = Field(20.0, gt=0, description="Create-call requests per second at most.")
    max_attempts: int = Field(6, gt=0, description="Attempts per command before it fails.")
    max_retry_seconds: float = Field(
        120.0, gt=0, description="Give up retrying a command after this long (s)."
    )
    backoff_initial: float = Field(0.5, gt=0, description="First retry delay (s).")
    backoff_max: float = Field(30.0, gt=0, description="Largest retry delay (s).")
    ledger_retention: float = Field(
        7 * 86400.0,
        gt=0,
        description="Seconds a command_id is remembered: a copy within this window gets "
        "`duplicate`, after it the id is new again. A command written more than 90% of it ago "
        "that the ledger does not know is `expired` (`too_old`), not placed: the last tenth is "
        "a margin for clock skew between producers, brokers and workers. Bounds the worker's "
        "memory and start-up; also the `retention.ms` of a ledger topic the bridge creates.",
    )
    retry_ambiguous: bool = Field(
        False,
        description="Retry a create-call whose outcome is unknown (timeout or connection lost "
        "after sending, 5xx): MAY RING TWICE, for FoneStorm may have created the call. Off, "
        "such a command ends `in_doubt` and is not retried. A 2xx whose body cannot be read is "
        "never retried.",
    )
    auth_retry_interval: float = Field(
        30.0,
        gt=0,
        description="Seconds between create-call attempts while FoneStorm refuses the token "
        "(401): consumption is paused meanwhile and one command at a time probes.",
    )
    session_timeout: float = Field(
        10.0, gt=0, description="Kafka consumer group session timeout (s) of the worker."
    )
    rebalance_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds the group waits for the worker to give up partitions in a "
        "rebalance. Create-call requests already sent get 80% of it to finish and record their "
        "answer, so it must exceed `BRIDGE_FONESTORM__READ_TIMEOUT` plus two produce timeouts.",
    )
    fence_margin: float = Field(
        2.0,
        ge=0,
        description="Seconds kept in hand when a worker proves it is still a member of its group "
        "before writing `placing` or `pending` or sending a create-call: it acts only within "
        "the lesser of the session and rebalance timeouts, less this, of a heartbeat the group "
        "answered as stable, so a paused worker that resumes cannot act on partitions given to "
        "another. Covers a write's way to the broker; at most half that lesser timeout.",
    )
    max_poll_interval: float = Field(
        300.0,
        gt=0,
        description="Kafka `max.poll.interval.ms` (s): the worker polls every 200 ms, also while "
        "paused, so only a stuck event loop exceeds it.",
    )
    delivery: Literal["at-most-once", "at-least-once"] = Field(
        "at-most-once",
        description="What to do with a command whose outcome is unknown after a crash: "
        "`at-most-once` reports `in_doubt`, `at-least-once` places it again.",
    )
    allowed_destinations: StringList = Field(
        default_factory=list,
        description="Where commands may call besides the countries of "
        "`BRIDGE_FONESTORM__FONENUMBERS` (comma-separated or a JSON list): ISO country codes "
        "(`CA`), E.164 prefixes (`+44`), or `*` for every country (e.g. `CA,+44`). A `to` "
        "elsewhere is `rejected` (`destination_not_allowed`). With no FoneNumber set and this "
        "empty, every command is refused.",
    )
    denied_destinations: StringList = Field(
        default_factory=list,
        description="E.164 prefixes (comma-separated or a JSON list, e.g. `+1900,+1976`) a "
        "command's `to` must not start with, whatever else allows it; a match is `rejected` "
        "(`destination_not_allowed`).",
    )
    deny_premium_rate: bool = Field(
        True,
        description="Refuse a `to` that libphonenumber classifies as premium-rate or "
        "shared-cost (e.g. +1 900, +44 909), and every non-geographic number (+800, +808, "
        "+870, +878, +881, +882, +883, +888, +979: international premium-rate, satellite and "
        "global networks), even with `BRIDGE_WORKER__ALLOWED_DESTINATIONS` `*`: `rejected` "
        "(`destination_not_allowed`), against toll fraud.",
    )

    @field_validator("allowed_destinations")
    @classmethod
    def _countries_or_prefixes(cls, value: list[str]) -> list[str]:
        entries = []
        for entry in value:
            compact = entry.strip()
            if compact == ANY_DESTINATION:
                entries.append(compact)
            elif re.fullmatch(r"[A-Za-z]{2}", compact):
                country = compact.upper()
                if country not in phonenumbers.SUPPORTED_REGIONS:
                    raise ValueError(f"{entry!r} is not a country libphonenumber knows")
                entries.append(country)
            else:
                entries.append(_e164_prefix(entry, 'an ISO country code ("CA"), "*" or '))
        return entries

    @field_validator("denied_destinations")
    @classmethod
    def _e164_prefixes(cls, value: list[str]) -> list[str]:
        return [_e164_prefix(prefix) for prefix in value]

    @model_validator(mode="after")
    def _fence_leaves_room_for_heartbeats(self) -> WorkerSettings:
        # Heartbeats go every third of the session: the rest must outlast one and its answer,
        # or jobs would keep waiting for a proof of membership.
        lease = min(self.session_timeout, self.rebalance_timeout)
        if self.fence_margin > lease / 2:
            raise ValueError(
                f"BRIDGE_WORKER__FENCE_MARGIN={self.fence_margin:g} must be at most half of "
                f"the lesser of BRIDGE_WORKER__SESSION_TIMEOUT and "
                f"BRIDGE_WORKER__REBALANCE_TIMEOUT ({lease / 2:g}s)"
            )
        return self


def _e164_prefix(prefix: str, alternatives: str = "") -> str:
    compact = re.sub(r"[\s().-]", "", prefix)
    if not re.fullmatch(r"\+[0-9]{1,15}", compact):
        raise ValueError(
            f'{prefix!r} is not {alternatives}an E.164 prefix: a `+` and 1 to 15 digits, e.g. "+44"'
        )
    return compact
