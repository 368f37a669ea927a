"""Every recipe in one place: how each level is trained, how the student is distilled and quantised, how the
flower gate and the "not sure" rule are fitted. The training modules run these; changing a recipe is changing a value
here (the run-time rules they produce are recorded in the manifest, not read from here).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..shipped import catalog
from .engine import TrainConfig
from .quantise import PORTABLE_QDQ


# ---------------------------------------------------------------------------------------------
# Levels 1-3 (``levels.run_level``)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FullFinetune:
    """A level's recipe when the whole network is trained (``--device cuda``): images are augmented
    on the fly (``augment``, a ``transforms.train_augment`` preset) and a share ``mix`` of the
    batches is mixed by CutMix/MixUp."""

    augment: str
    config: TrainConfig
    mix: float = 0.0


@dataclass
class LevelSpec:
    level: int
    name: str
    description: str
    arch: str = "efficientnet_lite0"
    head: str = "linear"
    augment: str = "baseline"  # baseline | strong (see transforms.train_augment)
    aug_views: int = 0  # pre-augmented views cached per training image on CPU (0: eval view only)
    include_eval_view: bool = False  # also draw the un-augmented view during training (with aug_views > 0)
    photo_views: int = 0  # views of the ``photo`` preset (people's photos) cached per training image, drawn alongside
    input_size: int | None = None  # None: the architecture's native resolution
    config: TrainConfig = field(default_factory=TrainConfig)
    full: FullFinetune | None = None  # the recipe with no frozen trunk (None: ``augment`` and ``config``)


# Full fine-tuning for people's photos (levels 2-3): the whole network, photo-like augmentation and
# CutMix/MixUp on half the batches, a lower learning rate than the frozen-trunk recipe (every ImageNet layer
# moves), no early stop: the cosine schedule runs out and the best validation epoch is kept.
PHOTO_RECIPE = TrainConfig(epochs=30, lr=5e-4, weight_decay=0.05, label_smoothing=0.1, warmup_epochs=1.0, patience=30)

LEVELS: dict[str, LevelSpec] = {
    "level1": LevelSpec(
        1, "level1", "Baseline: ImageNet EfficientNet-Lite2 (260 px), new 102-way head, late stages fine-tuned; "
        "no augmentation, no label smoothing, no weight decay, constant LR.",
        arch="efficientnet_lite2",
        config=TrainConfig(epochs=8, lr=1e-3, schedule="constant", warmup_epochs=0.0, patience=3),
        full=FullFinetune("baseline", TrainConfig(epochs=15, lr=2e-4, schedule="constant", warmup_epochs=0.0,
                                                  patience=5)),
    ),
    "level2": LevelSpec(
        2, "level2", "Regularised: random resized crops, flips, 90° rotations, colour jitter, cutout; "
        "label smoothing 0.1, weight decay 0.05, cosine schedule with warm-up (level 1's trunk: a clean ablation).",
        arch="efficientnet_lite2", augment="strong", aug_views=4, include_eval_view=True,
        config=TrainConfig(epochs=12, lr=1e-3, weight_decay=0.05, label_smoothing=0.1, patience=4),
        full=FullFinetune("photo", PHOTO_RECIPE, mix=0.5),
    ),
    # Level 3 uses the other trunk (EfficientNet-Lite0) at the same 260-px input, so the ensemble keeps one
    # preprocessing and the student's cached views are the same images for every member: members on one shared
    # frozen trunk made errors that were too correlated (0.69-0.84) for soft voting to gain anything.
    "level3": LevelSpec(
        3, "level3", "Spatial attention on EfficientNet-Lite0 (260 px): feature map -> 1×1 conv + sigmoid -> "
        "attention-weighted pooling -> classifier, trained with the level-2 recipe.",
        arch="efficientnet_lite0", input_size=260,
        head="attention", augment="strong", aug_views=4, include_eval_view=True,
        config=TrainConfig(epochs=12, lr=1e-3, weight_decay=0.05, label_smoothing=0.1, patience=4),
        full=FullFinetune("photo", PHOTO_RECIPE, mix=0.5),
    ),
}


# ---------------------------------------------------------------------------------------------
# Level 5: the student (``level5.run_level5``)
# ---------------------------------------------------------------------------------------------
MAX_PTQ_DROP = 0.005  # quantisation-aware fine-tuning would be warranted beyond this loss of top-1


@dataclass
class StudentSpec:
    name: str = catalog.fp32_twin(catalog.PRODUCTION)
    level: int = 5
    description: str = ("Distilled student: EfficientNet-Lite0 (frozen ImageNet trunk of level 3), late stages + linear "
                        "head trained on the level-4 ensemble's soft targets (α·T²·KL + (1−α)·CE) over the "
                        "cached eval, strong-augmentation and photo-augmentation views, and the eval view through the INT8 file's "
                        "trunk; shipped as an ONNX Runtime static INT8 model.")
    arch: str = "efficientnet_lite0"
    head: str = "linear"
    teacher: str = catalog.TEACHER
    # view name + seed: the eval and strong views cached by levels 1-3, and two of the photo preset (people's photos:
    # wide frames, colour casts, blur, JPEG), which made the student better on validation and on people's photos
    views: tuple[str, ...] = ("eval", "strong0", "strong1", "strong2", "strong3", "photo0", "photo1")
    # views also run through the trunk of the INT8 file (``quantise.quantised_trunk``: the calibration images and the
    # first quantisation trial): most of the INT8 file's error is its frozen trunk's, so the trained layers learn to
    # read what that trunk computes (soft targets: the teacher's on the same view), and the epoch is chosen on the
    # validation images through that trunk, the path the app runs
    int8_trunk_views: tuple[str, ...] = ("eval",)
    input_size: int | None = None
    calibration_images: int = 256
    # ONNX Runtime static PTQ configurations, in order of preference (the first within 0.5 point of fp32
    # on val is shipped). Full-range u8s8 is left out: its accuracy depends on the CPU that runs it (exact
    # on VNNI CPUs, saturating on AVX2-only ones, where an earlier student lost 4 points), and the trials
    # only see the CPU they run on. 7-bit weights (reduce_range) cannot saturate; the first trial widens
    # them to 8 bits wherever the AVX2 kernels still cannot saturate (``quantise.u8s8_pair_bound``), which
    # brought the frozen trunk's INT8 output from 22% to 14% off fp32's (relative L2 on val).
    quantization_trials: tuple[dict, ...] = (
        PORTABLE_QDQ,
        {"method": "MinMax", "types": "u8s8", "reduce_range": True},
        {"method": "MinMax", "types": "u8u8", "reduce_range": False},
        {"method": "Percentile", "types": "u8u8", "reduce_range": False},
    )
    config: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=15, lr=1e-3, weight_decay=0.05, label_smoothing=0.0, patience=5, kd_alpha=0.7, kd_temperature=4.0))
    # With the whole network trained (a GPU), the teacher runs on every augmented batch the student sees, so
    # the student learns the teacher's function on people's-photo views rather than on a few cached ones.
    full: FullFinetune = field(default_factory=lambda: FullFinetune("photo", TrainConfig(
        epochs=40, lr=5e-4, weight_decay=0.05, warmup_epochs=1.0, patience=40, kd_alpha=0.9, kd_temperature=2.0),
        mix=0.5))

    def __post_init__(self):
        if not set(self.int8_trunk_views) <= set(self.views):
            raise ValueError(f"int8_trunk_views {self.int8_trunk_views} must be among the views {self.views}: "
                             "they take the teacher's soft targets of those views")


STUDENT = StudentSpec()


# ---------------------------------------------------------------------------------------------
# Uncertainty ("not sure" from the softmax entropy, ``fits.update_uncertainty``)
# ---------------------------------------------------------------------------------------------
# 99%, not 95%: at ~98% accuracy a 95% target keeps every validation image and the 'not sure' flag never
# fires; 99% flags the least certain few percent, which is where hard real-world photos land.
TARGET_SELECTIVE_ACCURACY = 0.99


# ---------------------------------------------------------------------------------------------
# The flower gate (``fits.build_gate``, ``python -m train.gate``)
# ---------------------------------------------------------------------------------------------
GATE_INPUT_SIZE = 260  # the classifiers' own input size: a photo is resized once for the gate and the model
GATE_MASS = 0.3  # the flower classes carry this share of the mean ImageNet softmax over the training flowers
# (chosen by measurement among the alternatives below: the ImageNet softmax of a flower photo is diffuse,
# so a large share pulls in hundreds of unrelated classes and lets many non-flowers through; see README)
GATE_PASS_RATE = 0.99  # share of validation flowers the gate's threshold lets through
GATE_MASS_ALTERNATIVES = (0.2, 0.3, 0.5, 0.7, 0.9)  # recorded beside the chosen one (val side only)
# the student's configuration: exact on every x86 CPU, and its 8-bit weights keep the INT8 flower scores closer
# to fp32's than 7-bit weights throughout (measured on validation; README, Decisions)
GATE_QUANT = PORTABLE_QDQ
