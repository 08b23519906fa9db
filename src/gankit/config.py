"""Run configuration: one dataclass per concern, composed into `RunConfig`.

TOML or JSON in, the fully resolved configuration out as `config.json` (and inside every
checkpoint). Unknown keys and wrongly typed values raise `ConfigError` (a `ValueError`) naming
the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gankit.errors import ConfigError

SEED_MAX = 2**63 - 1  # seeds are 0..2^63-1 everywhere (config, CLI, web API)


def _check_choice(key: str, value: str, choices: typing.Iterable[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} = {value!r} is not valid; choose from {sorted(choices)}")


def _check_positive(key: str, value: float | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or not 0 < value < math.inf:  # NaN and infinity fail too
        raise ConfigError(f"{key} must be a finite number > 0, got {value!r}")


@dataclass
class DataConfig:
    dataset: str = "mnist-sample"  # a name in gankit.data.DATASETS, a .npz file or a folder of PNGs
    data_dir: str | None = None  # folder holding the IDX files (mnist, fashion-mnist); None: search
    split: str = "train"  # "train" or "test" (IDX datasets; the others have only "train")
    # stacked-mnist: how many triples to draw (None: 128,000, PacGAN's setting) and their seed;
    # mnist, fashion-mnist: train on a class-balanced subset of this many images, drawn by seed
    size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check_choice("data.split", self.split, ("train", "test"))
        if self.size is not None and not 1 <= self.size <= 10**7:
            raise ConfigError(f"data.size must be in 1..1e7, got {self.size}")
        if not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"data.seed must be in 0..2^63-1, got {self.seed}")


@dataclass
class ModelConfig:
    architecture: str = "mlp"  # a name in gankit.models.ARCHITECTURES
    conditioning: str = "none"  # a name in gankit.models.CONDITIONING; "none" is unconditional
    latent_dim: int = 100  # size of z
    g_hidden: list[int] = field(default_factory=lambda: [256, 512, 1024])  # G's hidden widths
    d_hidden: list[int] = field(default_factory=lambda: [512, 256])  # D's hidden widths
    d_dropout: list[float] = field(default_factory=lambda: [0.0, 0.0])  # dropout after each D layer
    leaky_slope: float = 0.2  # negative slope of every LeakyReLU
    bn_momentum: float = 0.2  # PyTorch convention (Keras momentum 0.8 == PyTorch 0.2)
    bn_eps: float = 1e-3  # BatchNorm epsilon (Keras default 1e-3; PyTorch default 1e-5)
    init: str = "keras"  # "keras": Glorot-uniform, zero bias, embeddings U(-0.05, 0.05);
    #                      "dcgan": N(0, 0.02); "torch": PyTorch's layer defaults
    channels: int | None = None  # base width c of the conv architectures (G: 4c-2c-c, D: c-2c-4c)
    spectral_norm: bool = False  # spectral normalisation of every D weight (Miyato et al. 2018)
    dropout_impl: str = "torch"  # D's dropout masks: "torch" (bernoulli_, as nn.Dropout) or
    #                              "fast" (16-bit draws on the CPU; statistically the same)
    # PacGAN's packing: D judges this many images at once (consecutive images of a batch,
    # stacked as channels), 1..16; conv architectures, unconditional; batch_size divisible by it
    pack: int = 1
    # ProGAN's minibatch standard deviation before D's head: the group size (2..64; the batch
    # is split into groups of it, with a stride), or None for none; conv architectures
    minibatch_std: int | None = None

    def __post_init__(self) -> None:
        _check_choice("model.init", self.init, ("keras", "dcgan", "torch"))
        _check_choice("model.dropout_impl", self.dropout_impl, ("torch", "fast"))
        _check_positive("model.channels", self.channels, allow_none=True)
        _check_positive("model.latent_dim", self.latent_dim)
        if len(self.d_dropout) != len(self.d_hidden):
            raise ConfigError(
                f"model.d_dropout has {len(self.d_dropout)} entries but model.d_hidden has "
                f"{len(self.d_hidden)}; give one dropout rate per hidden layer"
            )
        if any(not 0.0 <= p < 1.0 for p in self.d_dropout):
            raise ConfigError(f"model.d_dropout rates must be in [0, 1), got {self.d_dropout}")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ConfigError(f"model.bn_momentum must be in (0, 1], got {self.bn_momentum}")
        pack = self.pack
        if isinstance(pack, bool) or not isinstance(pack, int) or not 1 <= pack <= 16:
            raise ConfigError(f"model.pack must be an integer in 1..16, got {self.pack!r}")
        if self.minibatch_std is not None and (
            isinstance(self.minibatch_std, bool)
            or not isinstance(self.minibatch_std, int)
            or not 2 <= self.minibatch_std <= 64
        ):
            raise ConfigError(
                f"model.minibatch_std must be a group size in 2..64 or unset, "
                f"got {self.minibatch_std!r}"
            )


@dataclass
class OptimConfig:
    lr_g: float = 2e-4  # Adam learning rate of G
    lr_d: float = 2e-4  # Adam learning rate of D
    beta1: float = 0.5  # Adam beta_1, both players
    beta2: float = 0.999  # Adam beta_2, both players
    eps: float = 1e-7  # Adam epsilon (Keras default 1e-7; PyTorch default 1e-8)
    lr_decay: str = "none"  # "none", or "linear": both learning rates fall linearly to 0 at
    #                         train.iterations (recomputed when a resume extends the run)
    lr_decay_start: float = 0.0  # fraction of train.iterations before the decay starts, in
    #                              [0, 1): constant, then linear to 0 (pix2pix's schedule)

    def __post_init__(self) -> None:
        _check_choice("optim.lr_decay", self.lr_decay, ("none", "linear"))
        if not 0.0 <= self.lr_decay_start < 1.0:  # NaN fails too
            raise ConfigError(f"optim.lr_decay_start must be in [0, 1), got {self.lr_decay_start}")
        _check_positive("optim.lr_g", self.lr_g)
        _check_positive("optim.lr_d", self.lr_d)
        for key in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"optim.{key} must be in [0, 1), got {getattr(self, key)}")


@dataclass
class QuirksConfig:
    """Details of the reference Keras code, each switchable (True reproduces the reference)."""

    separate_d_steps: bool = True  # D takes two optimizer steps per iteration: real, then fake
    g_eval_for_fakes: bool = (
        True  # D's fakes come from G in inference mode (BatchNorm moving stats)
    )
    reuse_noise: bool = False  # G's step reuses D's noise instead of drawing fresh noise (CGAN)
    real_labels_for_fakes: bool = True  # D's fakes are made with the real batch's labels (CGAN)


@dataclass
class TrainConfig:
    iterations: int = 20_000  # batches (the reference's "epochs")
    batch_size: int = 32  # images per batch
    loss: str = "nonsaturating"  # a name in gankit.losses.LOSSES
    seed: int | None = None  # None: drawn at start and written into config.json
    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    threads: int | None = None  # torch.set_num_threads; None keeps PyTorch's default
    d_steps: int = 1  # D updates per G update (WGAN-GP's n_critic)
    # G's step backpropagates through the fakes D's step was given (same noise and labels):
    # one G forward per iteration instead of two, as in PyTorch's DCGAN example. Needs
    # d_steps = 1 and quirks.g_eval_for_fakes = false (those fakes carry no graph to reuse).
    reuse_fakes: bool = False
    # D's step runs one forward over the real and fake batches concatenated instead of one each
    # (one step on their summed loss; D must have no batch-coupled layer). Spectral norm's power
    # iteration then runs once per D step instead of twice.
    joint_d_forward: bool = False
    gp_weight: float | None = None  # WGAN-GP gradient penalty weight (lambda); None: no penalty
    r1_gamma: float | None = None  # R1 penalty gamma on real images; None: no penalty
    r2_gamma: float | None = None  # the same zero-centred penalty on fake images (R3GAN's R2)
    label_smoothing: float = 0.0  # one-sided: D's real target is 1 - this (BCE losses only)
    acgan_weight: float = 1.0  # weight of the ACGAN class cross-entropy in D's and G's loss
    ema_decay: float | None = None  # EMA of G's weights (e.g. 0.999); None: no EMA
    # EMA half-life at most this fraction of the iterations done, in (0, 1] (StyleGAN2-ADA's
    # ema_rampup); None: the warm-up min(ema_decay, (1 + step) / (10 + step))
    ema_rampup: float | None = None
    diffaugment: bool = False  # DiffAugment translation + cutout on everything D sees
    precision: str = "fp32"  # "fp32", or "bf16": autocast of G's and D's forward passes
    compile: bool = False  # torch.compile G and D (skipped with a warning without a compiler)
    sync_bn: bool = False  # under torchrun: SyncBatchNorm in G (batch statistics over all ranks)
    tensorboard: bool = False  # TensorBoard events in RUN/tb/ (the `tensorboard` extra)

    def __post_init__(self) -> None:
        _check_positive("train.iterations", self.iterations)
        _check_positive("train.batch_size", self.batch_size)
        _check_positive("train.threads", self.threads, allow_none=True)
        _check_positive("train.d_steps", self.d_steps)
        if self.seed is not None and not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"train.seed must be in 0..2^63-1, got {self.seed}")
        _check_choice("train.precision", self.precision, ("fp32", "bf16"))
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.ema_rampup is not None and not 0.0 < self.ema_rampup <= 1.0:
            raise ConfigError(f"train.ema_rampup must be in (0, 1], got {self.ema_rampup}")
        for key in ("gp_weight", "r1_gamma", "r2_gamma"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"train.{key} must be >= 0, got {value}")


@dataclass
class ScheduleConfig:
    log_every: int = 50  # iterations per metrics row (window averages) and NaN check
    sample_every: int = 200  # iterations per fixed-noise grid images/N.png
    checkpoint_every: int = 1000  # iterations per checkpoint (the final one is always written)
    keep_checkpoints: int = 3  # newest step_*.pt files kept on disk
    time_limit: float | None = None  # seconds of wall time; stop cleanly when exceeded
    eval_every: int | None = None  # iterations per evaluation (FID etc.); None: no evaluation
    eval_samples: int = 2000  # images generated per evaluation during training

    def __post_init__(self) -> None:
        _check_positive("schedule.eval_every", self.eval_every, allow_none=True)
        for key in (
            "log_every",
            "sample_every",
            "checkpoint_every",
            "keep_checkpoints",
            "eval_samples",
        ):
            _check_positive(f"schedule.{key}", getattr(self, key))
        _check_positive("schedule.time_limit", self.time_limit, allow_none=True)


@dataclass
class BudgetConfig:
    """`gankit train --budget`: what the user asked for. The plan that fits it is `BudgetPlan`."""

    seconds: float | None = None  # wall-clock budget of the whole run; None: no planning
    # revise the plan at log steps from the speed sustained so far, while the learning rate is
    # still constant (so nothing done so far depends on the total); only in the process that
    # planned, never when a recorded plan is replayed
    revise: bool = True

    def __post_init__(self) -> None:
        _check_positive("budget.seconds", self.seconds, allow_none=True)


@dataclass
class BudgetPlan:
    """What a budget's planning measured and decided, recorded so that the run replays.

    A config with `budget.seconds` and `plan.it_per_s` set is an ordinary run of
    `train.iterations` and is never planned again. All None: not planned.
    """

    it_per_s: float | None = None  # measured training speed the plan used
    grid_s: float | None = None  # measured seconds per fixed-noise grid
    checkpoint_s: float | None = None  # measured seconds per checkpoint
    evaluation_s: float | None = None  # measured seconds of the final evaluation
    plots_s: float | None = None  # measured seconds of the plots drawn at the end
    startup_s: float | None = None  # seconds spent before training (start-up, data, planning)
    planned_iterations: int | None = None  # train.iterations as first planned, before revisions
    revised_it_per_s: float | None = None  # sustained speed at the last revision; None: none
    revised_at: int | None = None  # iteration of the last revision

    def __post_init__(self) -> None:
        for key in ("it_per_s", "revised_it_per_s", "revised_at", "planned_iterations"):
            _check_positive(f"plan.{key}", getattr(self, key), allow_none=True)
        for key in ("grid_s", "checkpoint_s", "evaluation_s", "plots_s", "startup_s"):
            value = getattr(self, key)
            if value is not None and not 0 <= value < math.inf:
                raise ConfigError(f"plan.{key} must be a finite number >= 0, got {value!r}")


PLAN_KEYS = tuple(f.name for f in dataclasses.fields(BudgetPlan))


@dataclass
class RunConfig:
    preset: str | None = None  # the preset this configuration started from, for the record
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    quirks: QuirksConfig = field(default_factory=QuirksConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    plan: BudgetPlan = field(default_factory=BudgetPlan)

    def __post_init__(self) -> None:
        train, quirks = self.train, self.quirks
        if train.label_smoothing and train.loss not in ("nonsaturating", "minimax"):
            raise ConfigError(
                f"train.label_smoothing applies to the BCE losses, not train.loss = {train.loss!r}"
            )
        if train.gp_weight is not None and quirks.separate_d_steps:
            raise ConfigError(
                "train.gp_weight needs real and fake in one D step: "
                "set quirks.separate_d_steps = false"
            )
        if train.reuse_fakes and (train.d_steps != 1 or quirks.g_eval_for_fakes):
            raise ConfigError(
                "train.reuse_fakes needs train.d_steps = 1 and quirks.g_eval_for_fakes = false "
                f"(got d_steps = {train.d_steps}, g_eval_for_fakes = {quirks.g_eval_for_fakes}); "
                "set train.reuse_fakes = false to let G's step make fakes of its own"
            )
        penalised = train.r1_gamma or train.r2_gamma or train.gp_weight
        if train.joint_d_forward and (quirks.separate_d_steps or penalised):
            raise ConfigError(
                "train.joint_d_forward needs one D step on the summed loss without a gradient "
                "penalty: quirks.separate_d_steps = false, train.r1_gamma, train.r2_gamma and "
                "train.gp_weight unset (set train.joint_d_forward = false otherwise)"
            )
        if train.joint_d_forward and self.model.minibatch_std:
            raise ConfigError(
                "train.joint_d_forward would mix real and fake images in model.minibatch_std's "
                "groups: set one of them off"
            )
        if train.loss == "rpgan" and quirks.separate_d_steps:
            raise ConfigError(
                "train.loss = 'rpgan' pairs each real image with a fake one in one D step: set "
                "quirks.separate_d_steps = false"
            )
        self._check_d_groups()
        if self.model.architecture != "mlp" and self.model.channels is None:
            raise ConfigError(
                f"model.channels is required by architecture {self.model.architecture!r}"
            )

    def _check_d_groups(self) -> None:
        """Packing and minibatch std: conv D, the batch split evenly."""
        model, batch = self.model, self.train.batch_size
        for key, size in (("pack", model.pack), ("minibatch_std", model.minibatch_std)):
            if size is None or size == 1 and key == "pack":
                continue
            if model.architecture == "mlp":
                raise ConfigError(f"model.{key} is built for the conv architectures, not 'mlp'")
            if batch % size:
                raise ConfigError(
                    f"train.batch_size ({batch}) must be a multiple of model.{key} ({size})"
                )
        if model.pack > 1 and self.conditional:
            raise ConfigError(
                "model.pack is PacGAN's, for unconditional GANs: set model.conditioning = 'none' "
                "or model.pack = 1"
            )
        if model.pack > 1 and model.minibatch_std and (batch // model.pack) % model.minibatch_std:
            raise ConfigError(
                f"model.minibatch_std ({model.minibatch_std}) must divide the packed batch "
                f"(train.batch_size / model.pack = {batch // model.pack})"
            )

    @property
    def planned(self) -> bool:
        """Whether a budget's plan is recorded (the run is then never planned again)."""
        return self.budget.seconds is not None and self.plan.it_per_s is not None

    @property
    def conditional(self) -> bool:
        return self.model.conditioning != "none"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        return _build(cls, upgrade(values), "")

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Returns a copy with dotted keys replaced, e.g. {"train.iterations": 100}."""
        merged = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in merged or not isinstance(merged[section], dict) or not key:
                raise ConfigError(f"unknown configuration key {dotted!r}")
            merged[section][key] = value
        return RunConfig.from_dict(merged)


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """A config written by gankit 0.3, whose `budget` table held the plan too, in today's
    layout: the measured keys move to `plan` (run folders and checkpoints of 0.3 resume)."""
    budget = values.get("budget") if isinstance(values, dict) else None
    if not isinstance(budget, dict) or not set(budget) & set(PLAN_KEYS) or "plan" in values:
        return values
    moved = {key: budget[key] for key in PLAN_KEYS if key in budget}
    kept = {key: value for key, value in budget.items() if key not in moved}
    return {**values, "budget": kept, "plan": moved}


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"configuration section {prefix.rstrip('.') or '<root>'} must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown configuration key(s) {[prefix + k for k in unknown]}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(prefix + name, value, hint)
    return cls(**kwargs)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Checks `value` against a type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                return _coerce(key, value, option)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{key} = {value!r} has the wrong type; expected {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key} = {value!r}: expected null")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r}: expected a list")
        (item,) = typing.get_args(hint)
        return [_coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key} = {value!r}: expected {getattr(hint, '__name__', hint)}")


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as dotted keys: {"train": {"seed": 1}} -> {"train.seed": 1}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def parse_value(text: str) -> Any:
    """Parses a command-line override value: JSON if it parses (numbers, lists, true/null)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def available_presets() -> list[str]:
    files = resources.files("gankit").joinpath("presets").iterdir()
    return sorted(p.name.removesuffix(".toml") for p in files if p.name.endswith(".toml"))


def preset_description(name: str) -> str:
    """The preset file's first comment line."""
    text = resources.files("gankit").joinpath("presets", f"{name}.toml").read_text()
    first = text.splitlines()[0] if text else ""
    return first.lstrip("# ").strip()


def _preset_values(name: str) -> dict[str, Any]:
    if name not in available_presets():
        raise ConfigError(f"unknown preset {name!r}; choose from {available_presets()}")
    text = resources.files("gankit").joinpath("presets", f"{name}.toml").read_text()
    return tomllib.loads(text)


def load_preset(name: str, budget: bool = False) -> RunConfig:
    """The preset's configuration; with `budget`, its `[on_budget]` choices laid over it (what
    the preset changes when `--budget` plans the run, e.g. a learning rate that anneals to 0
    at the planned end)."""
    values = _preset_values(name)
    choices = values.pop("on_budget", {})
    values["preset"] = name
    config = RunConfig.from_dict(values)
    return merge_config(config, choices) if budget else config


def budget_choices(name: str) -> dict[str, Any]:
    """The preset's `[on_budget]` choices as dotted keys ({} when it has none)."""
    choices = _preset_values(name).get("on_budget", {})
    return {
        f"{section}.{key}": value
        for section, table in choices.items()
        for key, value in table.items()
    }


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a `.toml` or `.json` configuration file into a nested dict (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
        if path.suffix == ".json":
            return json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"config file {str(path)!r} is not valid: {error}") from error
    raise ConfigError(f"config file {str(path)!r} must end in .toml or .json")


def merge_config(base: RunConfig, values: dict[str, Any]) -> RunConfig:
    """Returns `base` with the (possibly partial) nested `values` laid over it."""
    merged = base.to_dict()
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return RunConfig.from_dict(merged)
