"""Rule configuration: every threshold of the engine, with the spec's defaults.

One pydantic model, loadable from a TOML file and overridable per run; its hash is
stored with every decision so a decision can always be traced to the rules that made it.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

AUDIENCE_TYPES = ("BROAD", "INTEREST", "LOOKALIKE", "CUSTOM")
# Modifier keys: the four audience types, plus a narrow-lookalike key (spec 9 "Lookalike 1%").
MODIFIER_KEYS = ("BROAD", "INTEREST", "LOOKALIKE", "LOOKALIKE_1PCT", "CUSTOM")


class ConfigError(ValueError):
    """A rules file or override that cannot be used; the message names the field."""


def count_setting(name: str, text: str | None, default: int, unit: str) -> int:
    """A whole number of `unit`, 1 or more, from a setting's text (unset or blank: `default`)."""
    text = (text or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}={text[:20]!r}: expected a whole number of {unit}, 1 or more")
    return value


# The spec's hard constraints (section 10). Configuration moves within these bands, never out.
SPEC_SCALE_PCT = (20.0, 30.0)  # max scale per action: 20-30 %
SPEC_COOLDOWN_HOURS = (48.0, 72.0)  # cooldown after a scale: 48-72 h


def _band(low: float, high: float, what: str) -> AfterValidator:
    def check(value: float | None) -> float | None:
        if value is not None and not low <= value <= high:
            raise ValueError(f"{value:g} is outside the spec's band {low:g}-{high:g} ({what}, spec section 10)")
        return value

    return AfterValidator(check)


ScalePct = Annotated[float, _band(*SPEC_SCALE_PCT, "percent per budget step")]
CooldownHours = Annotated[float, _band(*SPEC_COOLDOWN_HOURS, "hours after a budget change")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TypeModifier(_Strict):
    """Per audience-type adjustments (spec section 9); None means "use the global value"."""

    winner_roas: float | None = Field(None, gt=0, description="WINNER at normalised ROAS >= this")
    loser_roas: float | None = Field(None, gt=0, description="LOSER at normalised ROAS < this")
    pause_spend_multiple: float | None = Field(
        None, gt=0, description="a LOSER is paused only once 7-day spend >= this x target CPA"
    )
    decline_z: float | None = Field(None, gt=0, description="z-score of ROAS fall that is a decline")
    scale_step_pct: ScalePct | None = Field(None, description="budget step of a SCALE (20-30)")
    max_scale_pct: ScalePct | None = Field(None, description="per-type cap on a step (20-30)")
    cooldown_hours: CooldownHours | None = Field(None, description="no budget change this soon after one (48-72)")
    budget_ceiling_x_median_spend: float | None = Field(
        None, gt=0, description="no SCALE past this multiple of the account's median daily spend"
    )
    marginal_roas_factor: float | None = Field(
        None, gt=0, le=1, description="ROAS of the next budget step as a share of the audience's average (saturation)"
    )
    pause_loss_weight: float | None = Field(
        None, ge=1, description="how much more a wrong PAUSE costs than a missed one"
    )
    risk_notes: tuple[str, ...] = Field(default=(), description="risks always attached to this type")


def _default_modifiers() -> dict[str, TypeModifier]:
    return {
        # Higher spend tolerance, slower pause trigger, lower ROAS threshold.
        "BROAD": TypeModifier(
            winner_roas=1.1, loser_roas=0.8, pause_spend_multiple=4.0, decline_z=2.5, marginal_roas_factor=0.95
        ),
        # Lower patience, faster pause when ROAS drops.
        "INTEREST": TypeModifier(pause_spend_multiple=2.0, decline_z=1.5, marginal_roas_factor=0.85),
        "LOOKALIKE": TypeModifier(marginal_roas_factor=0.85),
        # Faster scale (bigger step, shorter cooldown), faster fatigue detection, lower ceiling.
        "LOOKALIKE_1PCT": TypeModifier(
            scale_step_pct=25.0,
            max_scale_pct=25.0,
            cooldown_hours=48.0,
            decline_z=1.5,
            budget_ceiling_x_median_spend=3.0,
            marginal_roas_factor=0.7,
        ),
        # Lower scale caps, strong creative dependency.
        "CUSTOM": TypeModifier(
            scale_step_pct=20.0,
            max_scale_pct=20.0,
            budget_ceiling_x_median_spend=2.0,
            marginal_roas_factor=0.65,
            risk_notes=(
                "Custom audience: results depend strongly on the creative; "
                "check creative fatigue before changing budget",
            ),
        ),
    }


class ScoreWeights(_Strict):
    """Composite score weights (spec 6.2)."""

    roas: float = Field(0.5, ge=0)
    spend: float = Field(0.2, ge=0)
    cvr: float = Field(0.2, ge=0)
    purchase_volume: float = Field(0.1, ge=0)


class RulesConfig(_Strict):
    """All thresholds of the engine. Money is in the account's currency units."""

    # Noise filter (spec 5)
    min_spend: float = Field(3000.0, ge=0, description="min spend over the decision window")
    min_purchases: float = Field(2.0, ge=0, description="min purchases over the decision window")
    min_age_days: int = Field(2, ge=0, description="min days since launch")

    # Money thresholds are in this currency; other accounts convert or set their own.
    threshold_currency: str = Field(
        "INR", pattern="^[A-Z]{3}$", description="currency of min_spend and the pause floor"
    )
    currency_rates: dict[str, float] = Field(
        default_factory=dict, description="units of each account currency per 1 threshold-currency unit"
    )
    account_min_spend: dict[str, float] = Field(
        default_factory=dict, description="per account id, in its own currency: overrides the converted min_spend"
    )

    # Windows
    decision_window_days: int = Field(7, ge=1, le=28, description="window for buckets and filters")
    long_window_days: int = Field(28, ge=7, le=90, description="history window for RETEST")
    lookback_days: int = Field(7, ge=0, le=28, description="recent days re-pulled every load")

    # Buckets (spec 7.1), on the 7-day ROAS against the account's 7-day average
    winner_roas: float = Field(1.2, gt=0)
    loser_roas: float = Field(0.9, gt=0)

    # Trend states (spec 7.2)
    trend_min_purchases: float = Field(
        8.0, ge=0, description="below this many purchases in the window no trend is claimed"
    )
    trend_z: float = Field(2.0, gt=0, description="z of the late/early ROAS ratio that makes IMPROVING")
    decline_z: float = Field(2.0, gt=0, description="z of a ROAS fall that makes DECLINING")
    trend_min_change: float = Field(0.15, ge=0, description="and the relative ROAS change must be at least this")
    soft_decline_z: float = Field(1.0, gt=0, description="a weaker fall counts as DECLINING while spend accelerates")
    spend_acceleration_threshold: float = Field(
        0.5, gt=0, description="spend growth (late vs early daily average) that is acceleration"
    )
    volatility_dispersion: float = Field(
        2.5, gt=1, description="VOLATILE when daily CPA dispersion is this many times Poisson"
    )
    volatility_p: float = Field(0.01, gt=0, lt=1, description="and its chi-square p-value below this")
    order_value_cv: float = Field(
        0.6, ge=0, description="coefficient of variation of order values (inflates ROAS noise)"
    )

    # Decision matrix (spec 8)
    pause_spend_multiple: float = Field(
        3.0, gt=0, description="LOSER paused only when window spend >= this x target CPA"
    )
    target_cpa: dict[str, float] = Field(
        default_factory=dict, description="per account id; else the account's window CPA"
    )

    # Confidence
    prior_strength: float = Field(
        5.0, gt=0, description="Gamma prior pseudo-purchases shrinking ROAS to the account mean"
    )

    confidence_high: float = Field(0.9, gt=0, lt=1)
    confidence_medium: float = Field(0.7, gt=0, lt=1)
    min_confidence_to_act: str = Field(
        "MEDIUM", pattern="^(HIGH|MEDIUM|LOW)$", description="probability that acting is right, as a label"
    )
    min_confidence_to_pause: str = Field(
        "MEDIUM", pattern="^(HIGH|MEDIUM|LOW)$", description="probability that a PAUSE is right, as a label"
    )
    # Expected value: act when the expected gain outweighs the weighted expected loss.
    evidence_half_life_days: float = Field(
        7.0, gt=0, description="days after which a day's evidence counts half, for the decision to act"
    )
    pause_loss_weight: float = Field(
        7.0, ge=1, description="a wrong PAUSE (a winner switched off, learning lost) weighs this much more"
    )
    scale_loss_weight: float = Field(1.0, ge=0, description="weight of a SCALE's expected loss against its gain")
    pause_average_below_break_even: bool = Field(
        True, description="an AVERAGE audience (stable or volatile) whose posterior is below 1 is a PAUSE candidate"
    )
    marginal_roas_factor: float = Field(
        1.0, gt=0, le=1, description="ROAS of the next budget step as a share of the audience's average"
    )

    # Guardrails (spec 10)
    scale_step_pct: ScalePct = Field(20.0, description="budget step of a SCALE, within the spec's 20-30")
    min_scale_pct: ScalePct = Field(20.0, description="lower edge of the scale band (20-30)")
    max_scale_pct: ScalePct = Field(30.0, description="upper edge of the scale band (20-30)")
    cooldown_hours: CooldownHours = Field(72.0, description="no budget change this soon after one (48-72)")
    max_account_daily_increase_pct: float = Field(
        15.0, ge=0, description="total budget added per account per day, % of its daily budgets"
    )
    min_spend_to_pause: float | None = Field(
        None, ge=0, description="no PAUSE under this window spend; defaults to min_spend"
    )

    # RETEST: a proven audience whose delivery has stalled
    retest_min_age_days: int = Field(14, ge=0)
    retest_min_purchases: float = Field(10.0, ge=0, description="over the long window")

    # Composite score (spec 6.2)
    score_weights: ScoreWeights = Field(default_factory=ScoreWeights)
    purchase_volume_target: float = Field(
        50.0, gt=0, description="purchases per window that score 1.0 (Meta's learning target)"
    )
    normalised_cap: float = Field(5.0, gt=0, description="cap on each normalised score term")

    modifiers: dict[str, TypeModifier] = Field(default_factory=_default_modifiers)

    @model_validator(mode="after")
    def _consistent(self) -> RulesConfig:
        if self.loser_roas > self.winner_roas:
            raise ValueError("loser_roas must not exceed winner_roas")
        if self.confidence_medium > self.confidence_high:
            raise ValueError("confidence_medium must not exceed confidence_high")
        if not self.min_scale_pct <= self.scale_step_pct <= self.max_scale_pct:
            raise ValueError("scale_step_pct must lie within [min_scale_pct, max_scale_pct]")
        unknown = set(self.modifiers) - set(MODIFIER_KEYS)
        if unknown:
            raise ValueError(f"unknown modifier keys {sorted(unknown)}; expected {MODIFIER_KEYS}")
        for key, mod in self.modifiers.items():
            winner = mod.winner_roas or self.winner_roas
            loser = mod.loser_roas or self.loser_roas
            if loser > winner:
                raise ValueError(f"modifiers.{key}: loser_roas must not exceed winner_roas")
            for name in ("scale_step_pct", "max_scale_pct"):
                value = getattr(mod, name)
                if value is not None and value > self.max_scale_pct:
                    raise ValueError(f"modifiers.{key}.{name}={value} exceeds max_scale_pct={self.max_scale_pct}")
        return self

    # Resolved per-type values -------------------------------------------------
    def modifier(self, key: str) -> TypeModifier:
        return self.modifiers.get(key, TypeModifier())

    def resolved(self, key: str, name: str) -> Any:
        """The per-type value of a field, falling back to the global one."""
        value = getattr(self.modifier(key), name)
        if value is not None:
            return value
        if name == "budget_ceiling_x_median_spend":
            return None
        return getattr(self, name)

    def type_scale_pct(self, key: str) -> float:
        """The step a SCALE takes for this type, within the band and the type's cap."""
        step = self.resolved(key, "scale_step_pct")
        cap = self.resolved(key, "max_scale_pct")
        return min(step, cap, self.max_scale_pct)

    @property
    def pause_min_spend(self) -> float:
        return self.min_spend if self.min_spend_to_pause is None else self.min_spend_to_pause

    def config_hash(self) -> str:
        """A short stable hash of every value, recorded on each decision row."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _format_errors(err: ValidationError, where: str) -> str:
    lines = [f"invalid rules configuration in {where}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        lines.append(f"  {loc}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def build_config(values: dict[str, Any] | None = None, where: str = "overrides") -> RulesConfig:
    """Validate a dict of settings into a RulesConfig, with an error naming each bad field."""
    try:
        return RulesConfig.model_validate(values or {})
    except ValidationError as err:
        raise ConfigError(_format_errors(err, where)) from None


def merge_settings(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, nested tables merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RulesConfig:
    """Load rules from a TOML file (optional) and apply per-run overrides on top."""
    values: dict[str, Any] = {}
    where = "overrides"
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"rules file {p} does not exist")
        try:
            values = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"rules file {p} is not valid TOML: {err}") from None
        where = str(p)
    if overrides:
        values = merge_settings(values, overrides)
        where = f"{where} + overrides" if path else "overrides"
    if "modifiers" in values:
        defaults = {k: v.model_dump(exclude_none=True) for k, v in _default_modifiers().items()}
        values["modifiers"] = merge_settings(defaults, values["modifiers"])
    return build_config(values, where)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(cfg: RulesConfig) -> str:
    """The configuration as a commented TOML file (`audience-engine config` prints it)."""
    lines = ["# Audience engine rules. Money is in the account's currency units.", ""]
    tables: list[tuple[str, dict[str, Any], type[BaseModel] | None]] = []
    for name, field in RulesConfig.model_fields.items():
        value = getattr(cfg, name)
        if isinstance(value, BaseModel):
            tables.append((name, value.model_dump(), type(value)))
        elif isinstance(value, dict) and name == "modifiers":
            for key, mod in value.items():
                tables.append((f"modifiers.{key}", mod.model_dump(exclude_none=True), TypeModifier))
        elif isinstance(value, dict):
            tables.append((name, value, None))
        elif value is not None:
            if field.description:
                lines.append(f"# {field.description}")
            lines.append(f"{name} = {_toml_value(value)}")
    for table, values, model in tables:
        lines += ["", f"[{table}]"]
        for key, value in values.items():
            desc = model.model_fields[key].description if model and key in model.model_fields else None
            if desc:
                lines.append(f"# {desc}")
            key_text = key if key.replace("_", "").isalnum() else json.dumps(key)
            lines.append(f"{key_text} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def override(key: str, value: Any) -> dict[str, Any]:
    """One setting as an override dict: "modifiers.BROAD.winner_roas", 1.2 -> {"modifiers": {"BROAD": {...}}}."""
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` pairs (a value is parsed as JSON when it can be; dots nest) into an override dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. min_spend=5000")
        key, raw = item.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out = merge_settings(out, override(key, value))
    return out


def apply_overrides(cfg: RulesConfig, overrides: dict[str, Any], where: str = "overrides") -> RulesConfig:
    """A whole configuration with some settings changed, validated like a rules file."""
    return build_config(merge_settings(cfg.model_dump(mode="json"), overrides), where) if overrides else cfg
