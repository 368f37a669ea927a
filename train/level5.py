"""Level 5: distil the ensemble into a student, INT8 it, calibrate it (`python -m train.level5 --help`)."""
from dataclasses import replace

from flowers_core.training.level5 import run_level5
from flowers_core.training.recipes import STUDENT
from train.common import options, parser


def main(argv=None) -> None:
    p = parser("Level 5: distil the level-4 ensemble into an EfficientNet-Lite0 student (α·T²·KL + (1−α)·CE on "
               "cached soft targets), static INT8 (ONNX Runtime QDQ), temperature scaling and an entropy "
               "rejection threshold, both students' novelty checks (train.novelty); writes models/student.safetensors, "
               "models/student_int8.onnx and their models/*_novelty.npz.")
    p.add_argument("--bench-threads", type=int, default=2, help="threads of the latency measurements (default 2)")
    p.add_argument("--no-compare", action="store_true", help="skip the INT8 backend comparison")
    p.add_argument("--compare-only", action="store_true", help="only compare the INT8 backends for the recorded "
                   "student, with its INT8 twin's calibration and configuration (no training, no scoring)")
    p.add_argument("--train-only", action="store_true", help="train and save the student's weights and training "
                   "record only (a machine without the test images, e.g. a lent GPU; --from-trained records it)")
    p.add_argument("--uncertainty-only", action="store_true", help="only re-fit temperature and the rejection "
                   "threshold from the saved val/test probabilities of the trained students (no training)")
    p.add_argument("--views", nargs="+", default=list(STUDENT.views), metavar="VIEW",
                   help="cached views of the training images the student is distilled on (CPU): 'eval' or an "
                   "augmentation preset and a seed, e.g. strong0 or photo1 (default: %(default)s)")
    p.add_argument("--int8-trunk-views", nargs="*", default=list(STUDENT.int8_trunk_views), metavar="VIEW",
                   help="of those views, the ones also cached through the INT8 file's trunk (none: the student never "
                   "sees it, and its epoch is chosen on the fp32 trunk's validation features; default: %(default)s)")
    args = p.parse_args(argv)
    try:
        spec = replace(STUDENT, views=tuple(args.views), int8_trunk_views=tuple(args.int8_trunk_views))
    except ValueError as e:  # StudentSpec's own check: an INT8-trunk view must be one of the views
        p.error(str(e))
    run_level5(options(args), spec, args.bench_threads, compare=False if args.no_compare else None,
               compare_only=args.compare_only, train_only=args.train_only, uncertainty_only=args.uncertainty_only)


if __name__ == "__main__":
    main()
