"""Typed (structured) configuration of a training job.

Every YAML under ``conf/`` and ``sweeps/`` is validated against these dataclasses,
so a misspelt key or a wrong type fails at composition, naming the key.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

# the closed choices live in choices.py; importers of config keep finding them here
from .choices import (Aggregation, Arm, BudgetMatch, BudgetSolve, DataKind, NumericRule, Precision,  # noqa: F401
                      SplitBy, VocabScope, choice)
from .plugins import backbone_plugins, tower_source_hash


def explain(exc: BaseException) -> str:
    """One line from a composition error and its causes: Hydra's "Error merging override
    arm=x" says which override, OmegaConf's cause says what is wrong with it."""
    parts: List[str] = []
    while exc is not None:
        first = _first_line(str(exc)) or type(exc).__name__
        if first not in parts:
            parts.append(first)
        exc = exc.__cause__
    return ": ".join(parts)


def _first_line(message: str) -> str:
    """The message's first line, continued when it ends with a colon (Hydra's "... raised while
    composing config:" says what went wrong on the next line), with OmegaConf's full key."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    full_key = next((line for line in lines[1:] if line.startswith("full_key:")), None)
    return f"{first} ({full_key})" if full_key and full_key.split(":", 1)[1].strip() not in first else first


@dataclass
class ModelConfig:
    backbone: str = MISSING  # set by model=<name> (conf/model/<name>.yaml)
    # d0 of the paper: the per-set embedding size at scale 1 (NFwFM uses 50).
    base_dim: int = 10
    # Explicit K and d; when null they follow from `arm` and `scale`
    # (se: K=1, d=scale*d0; me: K=scale, d=d0).
    embed_dim: Optional[int] = None
    num_embeddings: Optional[int] = None  # K, the number of embedding sets
    hidden: int = 400  # width of the MLP layers (towers and head)
    dropout: float = 0.2  # dropout in the MLP layers
    cross_layers: int = 4  # dcnv2's cross layers
    cin_layers: List[int] = field(default_factory=lambda: [16, 16])  # xdeepfm's CIN widths
    # hetero_moe only: one expert (and one embedding set) per entry.
    experts: List[str] = field(default_factory=list)
    aggregation: Aggregation = Aggregation.mean  # hetero_moe: mean of the experts, or a learned gate
    # model=custom (or a plugin): your tower class, PKG.MODULE:CLASS, built as
    # CLASS(num_fields=F, embed_dim=d, **tower_args); it maps (B, F, d) embeddings to (B, H).
    tower: Optional[str] = None
    tower_args: Any = None  # a mapping, e.g. {hidden: 64} (typed Any: a Dict field would refuse new keys)
    # The name runs and reports give this model (default: the backbone's, e.g. custom).
    label: Optional[str] = None


@dataclass
class SyntheticConfig:
    """Planted-teacher CTR data; see recsys_scaling/data/synthetic.py for the teacher."""

    rows: int = 20_000  # rows generated
    cardinalities: List[int] = field(default_factory=lambda: [3, 10, 50, 1000])  # values per field
    zipf_exponent: float = 1.1  # value frequencies within a field
    teacher_rank: int = 16  # the teacher's embedding width
    # Column k of the teacher embeddings has scale k^-spectrum_decay (0: isotropic). With a
    # decay, every extra student dimension is worth a diminishing but real amount.
    spectrum_decay: float = 0.0
    # Every (< low_cardinality) x (>= high_cardinality) field pair interacts: the pattern Guo
    # et al. blame for embedding collapse. false: no such pairs are forced (a negative control).
    low_high_pairs: bool = True
    low_cardinality: int = 100  # fields with fewer values are 'small'
    high_cardinality: int = 1000  # fields with at least this many values are 'large'
    # Fraction of the other field pairs that interact in the teacher.
    pair_density: float = 0.3
    interaction_scale: float = 1.0  # strength of the pairwise interactions
    first_order_scale: float = 0.5  # strength of the per-field terms
    positive_rate: float = 0.25  # share of positive labels
    seed: int = 0  # the teacher's and the rows' seed


@dataclass
class SchemaConfig:
    """Columns of a generic CSV/Parquet file (data.kind=csv)."""

    label: str = ""  # the 0/1 label column
    categorical: List[str] = field(default_factory=list)  # categorical columns
    numeric: List[str] = field(default_factory=list)  # numeric columns, bucketed
    # Bucketing of numeric columns: criteo_log (the paper's ln^2 rule; integers), log2, identity.
    numeric_rule: NumericRule = NumericRule.criteo_log
    drop: List[str] = field(default_factory=list)  # ignored columns
    delimiter: str = ","  # a text file's separator ("\t" for TSV)


@dataclass
class DataConfig:
    name: str = MISSING  # the dataset's name (set by data=<name>)
    # synthetic (generated), or a raw file: criteo, avazu, csv (CSV or Parquet with a schema).
    kind: DataKind = DataKind.synthetic
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # Raw files: a file, a directory (every file under it), a glob, or a list of them; one format
    # and schema, read in natural name order (day_2 before day_10). Synthetic data sets it null.
    path: Any = MISSING
    # random: a seeded draw by data.split; time: earlier files (or time_key partition values)
    # train, the last one is halved into validation and test (the Criteo Terabyte protocol).
    split_by: SplitBy = SplitBy.random
    time_key: Optional[str] = None  # a hive partition key (day=...) to order files by; null: file order
    days: Optional[List[int]] = None  # day files (day_N or day=N) to read; null: every one
    # Peak memory (GiB) while preparing: value counts beyond it are spilled to disk.
    prepare_memory: float = 8.0
    # Values seen fewer times map to the field's OOV index 0 (data/criteo.yaml: 10, avazu.yaml: 4).
    min_count: int = 1
    # all: count values over every row (the paper); train: over the training split only.
    vocab_scope: VocabScope = VocabScope.all
    # Fail on the first bad row (naming file:line) instead of skipping and reporting bad rows.
    strict: bool = False
    split_seed: int = 0  # the seed of the train/valid/test split
    avazu_hour_features: bool = False  # avazu: add weekday and hour-of-day fields
    schema: SchemaConfig = field(default_factory=SchemaConfig)
    # Declared vocabulary size per field (e.g. of the full dataset): lets `recsys-scaling budget`
    # and budget checks work before the data is prepared. Synthetic data knows its own.
    field_dims: Optional[List[int]] = None
    # Declared row count of a raw file not prepared here (e.g. Criteo's 45,840,617): lets
    # `budget` estimate job times before the data is prepared.
    declared_rows: Optional[int] = None
    split: List[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train / valid / test shares
    # Positive and negative rows the validation and test splits need at least (AUC, early
    # stopping): data with fewer is refused when prepared. 0 turns the check off, to look at a
    # tiny sample's encoding; training still refuses a split with one class (AUC undefined).
    min_class_rows: int = 5
    # Preparing fails when more than this share of the rows is bad (skipped), naming the main reason.
    max_bad_fraction: float = 0.1
    # The data axis: train on a seeded, nested subsample of this fraction of the training split
    # (0 < f <= 1; the rows at f are a subset of the rows at any larger f). Valid/test unchanged.
    train_fraction: float = 1.0
    cache_dir: str = "${oc.env:RECSYS_SCALING_CACHE,.cache/recsys_scaling}"  # prepared datasets


@dataclass
class TrainConfig:
    lr: float = 1e-3  # Adam's learning rate
    weight_decay: float = 1e-6  # Adam's weight decay (on every parameter, as the paper)
    batch_size: int = 2048  # training batch size
    eval_batch_size: int = 8192  # validation and test batch size
    prefetch: int = 2  # batches gathered ahead in a background thread (0: none)
    max_epochs: int = 100  # epochs at most (early stopping can end sooner)
    patience: int = 3  # epochs without a better validation AUC before stopping
    # SparseAdam on the embedding rows of each batch (no weight decay there) + Adam on the rest.
    # Faster on big vocabularies, but NOT the paper's protocol (dense Adam, weight decay on all).
    sparse_embedding: bool = False
    # torch intra-op threads; 0 = torch's default, or cores / parallel jobs under a parallel launcher.
    threads: int = 0
    # cpu, cuda, cuda:N, or auto: a free slot on a visible GPU (see jobs_per_gpu), else cpu.
    device: str = "cpu"
    progress: bool = True  # per-batch progress bars (a quiet sweep turns them off)
    # Save the state after every epoch; a killed job rerun with the same config continues from it.
    checkpoint: bool = True
    checkpoint_dir: str = "${oc.env:RECSYS_SCALING_CHECKPOINTS,.cache/recsys_scaling/checkpoints}"  # and leases
    precision: Precision = Precision.fp32  # fp32 (the paper), tf32 (GPU matmuls), bf16 (autocast towers)
    # Keep the encoded dataset on the training device and draw batches there (no host copies):
    # auto = on a GPU when it fits in half its free memory; true; false = host loader (pinned
    # memory on a GPU).
    data_on_device: str = "auto"
    compile: bool = False  # torch.compile the model (compiles on the first batches; see README)
    # Jobs sharing one GPU under a parallel launcher with train.device=auto: each job holds one of
    # the GPUs' jobs_per_gpu slots while it runs.
    jobs_per_gpu: int = 1
    # Name (tuned/<name>.yaml) or path of tuned hyperparameters written by `recsys-scaling tune`:
    # the entry of this job's (backbone, arm, scale) cell overrides lr / weight_decay / dropout.
    tuned: Optional[str] = None
    # Refuse a job whose estimated peak memory exceeds this machine's (or its GPU's); false forces it.
    memory_check: bool = True


@dataclass
class TrackingConfig:
    # null: $MLFLOW_TRACKING_URI if set, else sqlite:///mlflow.db in the working directory.
    uri: Optional[str] = None
    experiment: str = "recsys-scaling"  # the MLflow experiment
    parent_run_id: Optional[str] = None  # the sweep's parent run (set by the runner)


@dataclass
class DiagnosticsConfig:
    """Embedding-collapse diagnostics (recsys_scaling/diagnostics.py)."""

    enabled: bool = True  # log IA, spectra and principal angles at the end of a job
    # Per field, only the most frequent values (training-split counts) enter the SVDs.
    max_rows: int = 10_000
    # Also compute (metrics only) every N epochs during training; 0 = only at the end.
    every_n_epochs: int = 0


@dataclass
class BudgetConfig:
    """What SE and ME are matched on (recsys_scaling/budget.py)."""

    # embedding: the paper's semantics (SE d = s*d0 vs ME K = s sets of d0; equal embedding
    # parameters, totals differ). total: solve one arm's embedding size so totals match.
    match: BudgetMatch = BudgetMatch.embedding
    # With match=total: se_dim solves the SE embedding size to the ME total; me_dim solves the
    # ME per-set size to the SE total.
    solve: BudgetSolve = BudgetSolve.se_dim
    # Largest accepted |total - reference| / reference when totals are matched or targeted.
    tolerance: float = 0.02
    # Non-empty: job `scale=i` trains at the i-th total-parameter target (SE solves d, ME solves
    # K at d0) instead of the scale semantics.
    targets: List[int] = field(default_factory=list)


@dataclass
class SweepConfig:
    name: str = "adhoc"  # the sweep's name (set by the runner; a lone train is adhoc)
    # In a sweep, skip jobs whose config fingerprint already has a FINISHED run in the store
    # (FAILED / KILLED ones run again). `recsys-scaling sweep --force` sets it false.
    resume: bool = True
    # Names of this sweep's ME jobs with one embedding set whose SE twin (the same model: the
    # paper's shared 1x base) is in the sweep too: they are not trained twice. Set by the runner.
    shared_base: List[str] = field(default_factory=list)
    # Names of jobs an adaptive round leaves for later (their cells are decided). Set by the runner.
    deferred: List[str] = field(default_factory=list)
    # "<job name>#<fingerprint[:12]>" of the jobs the runner found finished before: they return
    # at once, without asking the store again. Set by the runner.
    finished: List[str] = field(default_factory=list)


@dataclass
class ReportConfig:
    """How `recsys-scaling report` reads the sweep (recorded on its parent run; `report --margin`
    overrides). Not part of a job's fingerprint."""

    # Practical margins: a difference smaller than this does not matter to you. The verdicts
    # "equivalent", "saturated" and "same scaling" mean "shown to be inside ±margin", and
    # seeds_needed is the seeds that would decide a claim at this resolution.
    margin: float = 0.0005  # AUC (and AUC per doubling)
    ia_margin: float = 1.0  # information abundance of the large fields
    margin_note: str = ""  # why these margins, shown in the report


@dataclass
class Config:
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    arm: Arm = Arm.se  # se: one embedding set; me: several
    scale: int = 1  # s: SE with d = s*d0 against ME with K = s sets of d0
    seed: int = 0  # initialisation and shuffling


# Keys that say where or how a job runs, not what it computes: left out of its fingerprint.
EXECUTION_KEYS = ("tracking", "sweep", "report", "train.progress", "train.threads", "train.device", "train.checkpoint",
                  "train.checkpoint_dir", "data.cache_dir", "train.data_on_device", "train.compile",
                  "train.jobs_per_gpu", "data.min_class_rows", "data.declared_rows", "data.max_bad_fraction",
                  "train.memory_check", "data.prepare_memory")
# Keys added after runs were recorded: at these values they leave the fingerprint out, so the
# jobs of earlier launches still match (and are skipped) after an upgrade.
NEUTRAL_DEFAULTS = {("train", "precision"): "fp32", ("model", "tower"): "None", ("model", "tower_args"): "None",
                    ("model", "label"): "None", ("data", "train_fraction"): "1.0", ("data", "split_by"): "random",
                    ("data", "time_key"): "None", ("data", "days"): "None"}


def job_name(backbone: str, arm: str, scale: int, seed: int, shape: Optional["EmbeddingShape"] = None,
             train_fraction: float = 1.0) -> str:
    """A job's name, also its MLflow run's: <backbone>-<arm>-<scale>x-s<seed>, or, for a job
    whose shape is given explicitly (a (K, d) grid), <backbone>-k<K>-d<d>-s<seed>; a job on a
    fraction of the training data adds it: <backbone>-<arm>-<scale>x-f0.25-s<seed>."""
    data = "" if float(train_fraction) == 1 else f"-f{float(train_fraction):g}"
    if shape is not None:
        return f"{backbone}-k{shape.num_embeddings}-d{shape.embed_dim}{data}-s{seed}"
    return f"{backbone}-{arm}-{scale}x{data}-s{seed}"


def explicit_shape(cfg) -> Optional["EmbeddingShape"]:
    """K and d of a job that sets model.num_embeddings or model.embed_dim itself (a frontier
    cell), else None (K and d follow from arm and scale)."""
    model = cfg.model
    if model.num_embeddings is None and model.embed_dim is None:
        return None
    return _shape_of(model, cfg.arm, cfg.scale)


def config_fingerprint(cfg, tree: Optional[dict] = None) -> str:
    """sha256 of the resolved config without execution keys: equal for equal jobs. `tree`: its
    fingerprint_tree when known (a seed's variant of another job's: that tree with its seed set)."""
    tree = fingerprint_tree(cfg) if tree is None else tree
    return hashlib.sha256(json.dumps(tree, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_tree(cfg) -> dict:
    """The part of a resolved config that makes a job what it is (see config_fingerprint)."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree.pop("hydra", None)
    for key in EXECUTION_KEYS:
        node, *rest = key.split(".")
        if rest:
            tree.get(node, {}).pop(rest[0], None)
        else:
            tree.pop(node, None)
    for (node, key), value in NEUTRAL_DEFAULTS.items():
        if str(tree.get(node, {}).get(key)) == value:
            tree[node].pop(key, None)
    if tree.get("model", {}).get("tower"):  # a user's tower is its code too: a changed file is a new job
        tree["model"]["tower_source"] = tower_source_hash(tree["model"]["tower"])
    return tree


def job_fingerprint(cfg, data_fingerprint: str, config: Optional[str] = None) -> str:
    """A job's identity: its config (config_fingerprint, or `config` when known) and the content
    of its data, so a rewritten data file makes new jobs instead of reusing runs of the old one."""
    return hashlib.sha256(f"{config or config_fingerprint(cfg)}:{data_fingerprint}".encode()).hexdigest()


def resolve_tracking_uri(uri: Optional[str]) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


@dataclass(frozen=True)
class EmbeddingShape:
    num_embeddings: int
    embed_dim: int


def _shape_of(model: Any, arm: str, scale: int) -> EmbeddingShape:
    """K and d as configured (explicit values win, else the paper's scale semantics), unchecked."""
    if model.experts:
        k_default, d_default = len(model.experts), model.base_dim
    elif arm == "se":
        k_default, d_default = 1, scale * model.base_dim
    else:
        k_default, d_default = scale, model.base_dim
    k = model.num_embeddings if model.num_embeddings is not None else k_default
    d = model.embed_dim if model.embed_dim is not None else d_default
    return EmbeddingShape(num_embeddings=k, embed_dim=d)


def embedding_shape(model: Any, arm: str, scale: int) -> EmbeddingShape:
    """K and d of a job: explicit values win, else the paper's scale semantics."""
    choice(Arm, arm, "arm")
    if scale < 1:
        raise ValueError(f"scale={scale}: must be >= 1")
    shape = _shape_of(model, arm, scale)
    if shape.num_embeddings < 1:
        raise ValueError(f"model.num_embeddings={shape.num_embeddings}: must be >= 1")
    if shape.embed_dim < 1:
        raise ValueError(f"model.embed_dim={shape.embed_dim}: must be >= 1")
    return shape


def register_configs() -> None:
    """The schemas the YAML files build on (`config_schema`, ...): registered on import."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)
    for name, path in backbone_plugins().items():  # model=NAME for a pip-installed tower
        cs.store(group="model", name=name, node=ModelConfig(backbone="custom", tower=path, label=name))


register_configs()
