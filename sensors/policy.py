"""The sensor policy every catalog sensor shares: when to poke, how the interval grows, when to give up.

The policy travels in a template's `sensor_config` beside the sensor's own fields and is fixed at
CreateTask. Its schedule is a pure function of the task's creation time, so a replica needs no state
beyond resource_meta to know whether a poke is due: due pokes happen at `created + t_k`, where the
k-th interval is `poke_interval * backoff**k`, capped at `max_poke_interval`. `Policy.decide` is the
one decision "poke now or not": the connector's Get, the authoring classes' `poke_inputs` and local runs
(`run_locally`) all call it.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import ConfigError, human_duration, short

#: The slot of every Get when no poke_interval is set: nothing is remembered, every Get pokes.
EVERY_GET = -1
#: The slot once the deadline has passed: one last poke, whose answer is final.
AFTER_DEADLINE = -2
#: The sensor_config keys that belong to the policy rather than to the sensor.
POLICY_FIELDS = ("poke_interval", "backoff", "max_poke_interval", "deadline", "soft_fail")
#: Longest duration a policy field may hold (ten years): beyond it datetimes overflow, and no
#: Flyte execution waits that long.
MAX_SECONDS = 3650 * 86400.0
#: Largest backoff factor: past it the schedule is one poke and then the cap, and floats overflow.
MAX_BACKOFF = 100.0


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a poke is due now, whether the deadline has passed, and the schedule slot of now."""

    due: bool
    expired: bool
    #: The slot to remember with the answer this poke gives: a later call in the same slot is not due.
    slot: int


#: The decision of a policy with neither interval nor deadline (made once: it is every Get's).
_EVERY_GET = Decision(due=True, expired=False, slot=EVERY_GET)


@dataclass(frozen=True)
class Policy:
    """When to poke and when to stop; the defaults poke on every Get and never give up."""

    #: Seconds between due pokes; None pokes on every Get.
    poke_interval: float | None = None
    #: Factor the interval grows by after each due poke that was not met (>= 1).
    backoff: float = 1.0
    #: Cap on the grown interval, seconds; None for no cap.
    max_poke_interval: float | None = None
    #: Seconds after CreateTask when the sensor gives up; None waits for ever.
    deadline: float | None = None
    #: At the deadline, succeed (output `met` false) instead of failing.
    soft_fail: bool = False

    @property
    def is_default(self) -> bool:
        """True when the policy changes nothing (poke on every Get, no deadline)."""
        return self == DEFAULT

    @classmethod
    def split(cls, raw: Mapping[str, Any] | None) -> tuple[Policy, dict[str, Any]]:
        """The policy fields of a `sensor_config` and the rest (the sensor's own config)."""
        if raw is None:
            return DEFAULT, {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"sensor_config must be a mapping, not {type(raw).__name__}.")
        own = {k: v for k, v in raw.items() if k not in POLICY_FIELDS}
        return cls.parse({k: raw[k] for k in POLICY_FIELDS if k in raw and raw[k] is not None}), own

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Policy:
        """Check and build the policy from its fields; ConfigError names the bad one."""
        seconds = {}
        for name in ("poke_interval", "max_poke_interval", "deadline"):
            if name in values:
                seconds[name] = _seconds(values[name], name)
        backoff = values.get("backoff", 1.0)
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or not math.isfinite(backoff):
            raise ConfigError(f"policy field 'backoff' must be a number, not {_show(backoff)}.")
        if not 1 <= backoff <= MAX_BACKOFF:
            raise ConfigError(f"policy field 'backoff' must be from 1 to {MAX_BACKOFF:g}, not {backoff:g}.")
        soft_fail = values.get("soft_fail", False)
        if not isinstance(soft_fail, bool):
            raise ConfigError(f"policy field 'soft_fail' must be true or false, not {_show(soft_fail)}.")
        interval, cap = seconds.get("poke_interval"), seconds.get("max_poke_interval")
        if interval is not None and interval <= 0:
            raise ConfigError("policy field 'poke_interval' must be at least 0.001 seconds.")
        if cap is not None and interval is None:
            raise ConfigError("policy field 'max_poke_interval' needs a 'poke_interval' to grow from.")
        if backoff > 1 and interval is None:
            raise ConfigError("policy field 'backoff' needs a 'poke_interval' to grow.")
        if cap is not None and interval is not None and cap < interval:
            raise ConfigError(
                f"policy field 'max_poke_interval' ({cap:g}s) is below 'poke_interval' ({interval:g}s)."
            )
        deadline = seconds.get("deadline")
        if deadline is not None and deadline <= 0:
            raise ConfigError("policy field 'deadline' must be at least 0.001 seconds.")
        if soft_fail and deadline is None:
            raise ConfigError("policy field 'soft_fail' needs a 'deadline'.")
        return cls(interval, float(backoff), cap, deadline, soft_fail)

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the default, as a sensor_config carries them."""
        return {
            name: getattr(self, name)
            for name in POLICY_FIELDS
            if getattr(self, name) != getattr(DEFAULT, name)
        }

    # -- the schedule -------------------------------------------------------------------------
    # Due poke k happens `start(k)` seconds after creation: start(0) = 0 (the first Get pokes), and
    # the gap before poke k+1 is interval * backoff**k, capped. The closed forms below are only
    # estimates under floating point; `slot` corrects them against `start` so a boundary such as
    # exactly 30 s with 10 s doubling lands in the right slot.
    @functools.cached_property
    def _grow_steps(self) -> float:
        """How many gaps are shorter than the cap (math.inf without a cap or growth); worked out once."""
        interval, b, cap = self.poke_interval, self.backoff, self.max_poke_interval
        if interval is None or cap is None or b == 1.0:
            return math.inf
        g = max(0, math.ceil(math.log(cap / interval) / math.log(b)))
        while g > 0 and interval * b ** (g - 1) >= cap:
            g -= 1
        while interval * b**g < cap:
            g += 1
        return g

    def start(self, k: int) -> float:
        """Seconds after creation of due poke `k` (0, then one interval later, growing by backoff)."""
        interval = self.poke_interval
        if interval is None or k <= 0:
            return 0.0
        b = self.backoff
        if b == 1.0:
            return k * interval
        g = self._grow_steps
        if k <= g:
            return interval * (b**k - 1) / (b - 1)
        assert self.max_poke_interval is not None  # g is finite only with a cap
        g = int(g)
        return interval * (b**g - 1) / (b - 1) + (k - g) * self.max_poke_interval

    def slot(self, elapsed: float) -> int:
        """The index of the latest due poke at `elapsed` seconds after creation (0 before the second).

        Two Gets in the same slot need one poke between them; a new slot means a poke is due.
        EVERY_GET without an interval: nothing is remembered and every Get pokes.
        """
        interval = self.poke_interval
        if interval is None:
            return EVERY_GET
        if elapsed < interval:
            return 0
        b, g = self.backoff, self._grow_steps
        if b == 1.0:
            k = int(elapsed // interval)
        else:
            grown = self.start(int(g)) if g != math.inf else math.inf
            if elapsed < grown:
                k = math.floor(math.log(elapsed * (b - 1) / interval + 1) / math.log(b))
            else:
                assert self.max_poke_interval is not None
                k = int(g + (elapsed - grown) // self.max_poke_interval)
        while k > 0 and self.start(k) > elapsed:
            k -= 1
        while self.start(k + 1) <= elapsed:
            k += 1
        return k

    def next_due(self, elapsed: float) -> float | None:
        """Seconds after creation of the next due poke after `elapsed`; None without an interval."""
        if self.poke_interval is None:
            return None
        return self.start(self.slot(elapsed) + 1)

    def decide(self, created_at: dt.datetime, now: dt.datetime, last_slot: int | None) -> Decision:
        """Poke now or not, for a sensor created at `created_at` whose last poke answered for `last_slot`.

        Due when now is in a new slot of the schedule (always without an interval); past the deadline
        the slot is AFTER_DEADLINE: one last poke is due, and its answer is final.
        """
        if self.every_get:
            return _EVERY_GET
        if self.expired(created_at, now):
            slot = AFTER_DEADLINE
        else:
            slot = self.slot((now - created_at).total_seconds())
        return Decision(slot == EVERY_GET or slot != last_slot, slot == AFTER_DEADLINE, slot)

    def expired(self, created_at: dt.datetime, now: dt.datetime) -> bool:
        """True once the deadline has passed."""
        return self.deadline is not None and (now - created_at).total_seconds() >= self.deadline

    def deadline_at(self, created_at: dt.datetime) -> dt.datetime | None:
        """When the sensor gives up, if it ever does."""
        return None if self.deadline is None else created_at + dt.timedelta(seconds=self.deadline)

    def describe(self, created_at: dt.datetime) -> dict[str, Any]:
        """The policy in the words the console shows (interval, growth, deadline as a time)."""
        facts: dict[str, Any] = {}
        if self.poke_interval is not None:
            facts["poke_interval"] = human_duration(dt.timedelta(seconds=self.poke_interval))
            if self.backoff != 1.0:
                facts["backoff"] = self.backoff
                if self.max_poke_interval is not None:
                    facts["max_poke_interval"] = human_duration(dt.timedelta(seconds=self.max_poke_interval))
        deadline = self.deadline_at(created_at)
        if deadline is not None:
            facts["deadline"] = deadline.isoformat(timespec="seconds").replace("+00:00", "Z")
            facts["at_deadline"] = "succeed with met=false" if self.soft_fail else "fail"
        return facts

    @property
    def every_get(self) -> bool:
        """True with neither interval nor deadline: every Get pokes and nothing is worked out."""
        return self.poke_interval is None and self.deadline is None

    def deadline_message(self, awaited: str) -> str:
        """What the task says when its deadline passes; `awaited` as `awaited()` words it."""
        waited = human_duration(dt.timedelta(seconds=self.deadline or 0))
        verdict = "succeeding with met=false (soft_fail)" if self.soft_fail else "giving up"
        return f"waited {waited} for {awaited}; its deadline passed, {verdict}."


DEFAULT = Policy()


def awaited(facts: Mapping[str, Any], sensor: str) -> str:
    """The main thing a sensor awaits, for messages: its first fact (`s3://bucket/x`, `delay 30.0`)."""
    for key, value in facts.items():
        if isinstance(value, str):
            return value[:200]
        if isinstance(value, dt.timedelta):
            value = value.total_seconds()
        elif isinstance(value, dt.datetime):
            value = value.isoformat()
        return f"{key} {value}"[:200]
    return sensor


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"policy field {name!r} must be a number of seconds, not {_show(value)}.")
    if value < 0:
        raise ConfigError(f"policy field {name!r} must not be negative, not {value:g}.")
    if value > MAX_SECONDS:
        raise ConfigError(f"policy field {name!r} must be at most {MAX_SECONDS:.0f} seconds (ten years).")
    # resource_meta keeps milliseconds: round now so the connector, local runs and the console agree.
    return round(value * 1000) / 1000


def _show(value: Any) -> str:
    return f"{type(value).__name__} {short(repr(value), 40)}"
