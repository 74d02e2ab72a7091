"""The daemon's settings: one YAML file plus environment overrides, validated by pydantic-settings.

Priority, highest first: environment (``YIELDVAULT_`` prefix, ``__`` between levels, e.g.
``YIELDVAULT_LIMITS__MIN_IDLE_RATIO=0.05``), then the YAML file, then the defaults here.
Unknown keys anywhere are errors (``extra="forbid"``), so a typo never silently does nothing.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from adapters.config import FeedSettings
from core.config import Strict, VenueConfig
from guard.config import GuardSettings
from optimizer.config import OptimizerSettings, RiskLimits
from vault.api.config import ApiSettings, ApiToken, is_loopback
from vault.reconcile import ReconcileSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = Path(
    os.environ.get("YIELDVAULT_CONFIG_FILE", REPO_ROOT / "config" / "default.yaml")
)


class VaultSection(Strict):
    # The vault's id, pinned (vault/identity.py): it keys the paper account at the venue, and a
    # fresh ledger with a known id is a lost ledger, not a new vault. None: made at the first
    # start and kept in the ledger and in data_dir/vault-id.
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] | None = None
    initial_capital_usd: Annotated[Decimal, Field(gt=0, max_digits=20, decimal_places=6)] = Decimal(
        1_000_000
    )
    home_chain: str = "ethereum"
    # paper: moves execute against the simulated market; dry-run: plan only; export: each plan is
    # written for an external signer, which reports the outcomes (vault/export.py)
    mode: Literal["paper", "dry-run", "export"] = "paper"
    # Feed timestamps are judged against this clock. auto: follow the simulated market's clock when
    # feeds.root_url is one (it answers GET /admin/v1/state), else the wall clock.
    clock: Literal["auto", "wall", "market"] = "auto"
    # auto: plans execute when they pay; manual: every plan waits for POST /api/v1/plans/{id}/approve;
    # above_usd: plans whose turnover exceeds approval_threshold_usd wait
    approval: Literal["auto", "manual", "above_usd"] = "auto"
    approval_threshold_usd: Annotated[float, Field(gt=0)] = 100_000.0
    approval_expiry_seconds: Annotated[float, Field(gt=0)] = 3_600.0  # wall seconds a plan may wait
    # export mode: wall seconds the signer has to report every move's outcome
    export_deadline_seconds: Annotated[float, Field(gt=0)] = 900.0
    # export mode: a move's minimum acceptable outcome is its expected outcome less this slippage
    export_slippage_bps: Annotated[float, Field(ge=0, le=10_000)] = 50.0


class ScheduleSettings(Strict):
    poll_interval_seconds: Annotated[float, Field(gt=0, le=86_400)] = 15.0
    rebalance_interval_seconds: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    misfire_grace_seconds: Annotated[float, Field(gt=0)] = 30.0


class ExecutorSettings(Strict):
    # Wall seconds a cycle waits for its bridge legs to fill before the deposits they fund (a leg
    # not filled by then lands at a later cycle, and its deposit with it); 0: check once. A market
    # whose clock is paused or stepped fills nothing while the executor waits: set 0 there.
    bridge_wait_seconds: Annotated[float, Field(ge=0, le=600)] = 5.0


def parse_listen(value: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``; port 0 means "pick a free one"."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65_535:
        raise ValueError(f"expected HOST:PORT with PORT in 0..65535, got {value!r}")
    return host.strip("[]"), int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YIELDVAULT_",
        env_nested_delimiter="__",
        env_parse_none_str="null",
        extra="forbid",
        frozen=True,
    )

    vault: VaultSection = VaultSection()
    listen: str = "127.0.0.1:9500"
    api: ApiSettings = ApiSettings()
    data_dir: Path = Path("./var")
    schedule: ScheduleSettings = ScheduleSettings()
    feeds: FeedSettings = FeedSettings()
    limits: RiskLimits = RiskLimits()
    optimizer: OptimizerSettings = OptimizerSettings()
    reconciliation: ReconcileSettings = ReconcileSettings()
    executor: ExecutorSettings = ExecutorSettings()
    guards: GuardSettings = GuardSettings()
    venues: Annotated[tuple[VenueConfig, ...], Field(min_length=1)]

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        seen: set[str] = set()
        for venue in self.venues:
            if venue.id in seen:
                raise ValueError(f"venues: id {venue.id!r} appears twice")
            seen.add(venue.id)
        kinds = {v.kind for v in self.venues}
        unknown_kinds = set(self.limits.max_kind_ratio) - kinds
        if unknown_kinds:
            raise ValueError(
                f"limits.max_kind_ratio: no configured venue is of kind {sorted(unknown_kinds)}"
            )
        for key, universe, what in (
            ("max_chain_ratio", {v.chain for v in self.venues}, "chain"),
            ("max_protocol_ratio", {v.protocol for v in self.venues}, "protocol"),
            (
                "max_dependency_ratio",
                {p for v in self.venues for p in v.to_venue().exposures},
                "protocol",
            ),
        ):
            unknown = set(getattr(self.limits, key)) - universe
            if unknown:
                raise ValueError(
                    f"limits.{key}: no configured venue is on {what} {sorted(unknown)}"
                )
        if (
            self.feeds.embedded_market is None
            and self.feeds.root_url is None
            and any(v.feed.base_url is None for v in self.venues)
        ):
            raise ValueError(
                "feeds: set embedded_market or root_url (a venue's feed has no base_url)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML arrives as init kwargs (see load_settings); the environment must beat it.
        return env_settings, init_settings

    def market_path(self, config_dir: Path) -> Path | None:
        """The embedded market's YAML, relative paths taken from the config file's folder."""
        if self.feeds.embedded_market is None:
            return None
        path = Path(self.feeds.embedded_market)
        return path if path.is_absolute() else config_dir / path


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` holds one line per problem, naming key and reason."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def render(self) -> str:
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = [f"Invalid config {self.source} ({len(self.problems)} {noun}):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _format_validation_error(exc: ValidationError) -> Iterator[str]:
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            yield f"{loc}: unknown key"
        elif err["type"] == "missing":
            yield f"{loc}: required key is missing"
        elif isinstance(err.get("input"), (dict, list, tuple)):
            yield f"{loc}: {msg}"
        else:
            yield f"{loc}: {msg} (got {err.get('input')!r})"


MAX_CONFIG_BYTES = 1024 * 1024  # a real config is a few KB; a 50 MB one took 32 s to parse


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, turning every failure into a ConfigError that names file, line and column."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                source,
                [f"(file): {size:,} bytes; a config file is at most {MAX_CONFIG_BYTES:,} bytes"],
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            source,
            [f"(file): not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line})"],
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}YAML syntax error: {problem}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            source, [f"(top level): expected a mapping of keys, got {type(data).__name__}"]
        )
    return data


def load_settings(
    path: Path = DEFAULT_CONFIG, *, listen: str | None = None, data_dir: Path | None = None
) -> Settings:
    """Load and validate the config at ``path`` with environment overrides; raise ConfigError on any problem.

    ``listen`` and ``data_dir`` (from CLI flags) beat both the file and the environment.
    """
    data = read_yaml(path)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(str(path), list(_format_validation_error(exc))) from exc
    except SettingsError as exc:
        raise ConfigError(str(path), env_problems() or [str(exc)]) from None
    problems = semantic_problems(settings)
    if problems:
        raise ConfigError(str(path), problems)
    if listen is not None:
        try:
            parse_listen(listen)
        except ValueError as exc:
            raise ConfigError("--listen", [f"listen: {exc}"]) from exc
        settings = settings.model_copy(update={"listen": listen})
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    host, _ = parse_listen(settings.listen)
    if not settings.api.tokens and not is_loopback(host):
        raise ConfigError(
            str(path),
            [
                f"api.tokens: listen {settings.listen} is not on loopback, so at least one token "
                "is required (`yieldvault ctl hash-token` prints one and its sha256; set "
                "api.tokens or YIELDVAULT_API__TOKENS)"
            ],
        )
    return settings


def env_problems() -> list[str]:
    """``YIELDVAULT_*`` variables whose value looks like JSON but does not parse, each named."""
    import json

    out = []
    for name, value in sorted(os.environ.items()):
        if name.startswith("YIELDVAULT_") and value.lstrip()[:1] in ("{", "["):
            try:
                json.loads(value)
            except ValueError as exc:
                out.append(f"environment {name}: not valid JSON ({exc})")
    return out


def _url_problem(value: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected http(s)://host[:port][/path], got {value!r}"
    if parts.query or parts.fragment:
        return f"no query or fragment allowed, got {value!r}"
    return None


def semantic_problems(settings: Settings) -> list[str]:
    """What the models alone cannot see and ``run`` would otherwise crash or idle on.

    Unknown adapters, adapters that do not serve the venue's kind, bad ``feed.params``, a
    ``home_chain`` no venue is on, malformed URLs, and both ``embedded_market`` and ``root_url``.
    """
    from adapters import ADAPTERS

    problems = []
    f = settings.feeds
    if f.embedded_market is not None and f.root_url is not None:
        problems.append(
            "feeds: embedded_market and root_url are both set; set one "
            "(embedded_market: null to poll root_url)"
        )
    for key, url in (("feeds.root_url", f.root_url), ("feeds.coins_url", f.coins_url)):
        why = _url_problem(url) if url is not None else None
        if why:
            problems.append(f"{key}: {why}")
    for i, venue in enumerate(settings.venues):
        where = f"venues.{i}"
        adapter = ADAPTERS.get(venue.feed.adapter)
        if adapter is None:
            problems.append(
                f"{where}.feed.adapter: unknown adapter {venue.feed.adapter!r} for venue "
                f"{venue.id}; known: {sorted(ADAPTERS)}"
            )
            continue
        try:
            adapter.parse_params(venue)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
        if venue.feed.base_url is not None:
            why = _url_problem(venue.feed.base_url)
            if why:
                problems.append(f"{where}.feed.base_url: {why}")
    chains = sorted({v.chain for v in settings.venues})
    if settings.vault.home_chain not in chains:
        problems.append(
            f"vault.home_chain: no configured venue is on {settings.vault.home_chain!r} "
            f"(venues are on {chains})"
        )
    return problems


def describe(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, type, default) for every setting, nested models flattened: the README's config reference."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        nested = [
            a
            for a in (annotation, *get_args(annotation))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if nested and name != "venues":
            yield from describe(nested[0], key + ".")
        else:
            default = (
                "(required)"
                if field.is_required()
                else field.get_default(call_default_factory=True)
            )
            yield key, annotation, default


def _type_name(tp: Any) -> str:
    """A readable name for a field's type: ``float``, ``str or null``, ``map of str to float``."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is Literal:
        return " / ".join(str(a) for a in args)
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if origin in (tuple, list, frozenset, set):
        return f"list of {_type_name(args[0])}"
    return getattr(tp, "__name__", str(tp))


def _reference_rows(model: type[BaseModel]) -> list[str]:
    rows = ["| key | type | default |", "| --- | --- | --- |"]
    for key, annotation, default in describe(model):
        if default == "(required)":
            shown = "(required)"
        elif isinstance(default, (Decimal, Path, enum.Enum)):
            shown = f"`{default}`"
        elif isinstance(default, (dict, frozenset, tuple)) and not default:
            shown = "(none)"
        else:
            shown = f"`{default!r}`"
        rows.append(f"| `{key}` | {_type_name(annotation)} | {shown} |")
    return rows


def config_reference_markdown() -> str:
    """The README's config reference tables, generated from the models (``python -m vault.settings``)."""
    return "\n".join(
        [
            *_reference_rows(Settings),
            "",
            "Each entry of `venues`:",
            "",
            *_reference_rows(VenueConfig),
            "",
            "Each entry of `api.tokens`:",
            "",
            *_reference_rows(ApiToken),
        ]
    )


if __name__ == "__main__":
    print(config_reference_markdown())
