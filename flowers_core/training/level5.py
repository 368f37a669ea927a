"""Level 5, top to bottom (``python -m train.level5``): distil the level-4 ensemble into a small student, quantise it
to INT8, score and record both files, then fit their novelty checks. One step a module: ``distill`` (the teacher's
soft targets and the training), ``student_int8`` (ONNX export, static INT8, the backend comparison),
``student_record`` (scores as the app runs them, latency, manifest entries, uncertainty); the recipe is
``recipes.STUDENT``."""
from __future__ import annotations

from ..shipped import manifest as art
from ..shipped.manifest import ModelEntry
from ..shipped.splits import SHIPPED_PROTOCOL
from .distill import load_trained_student, train_student
from .fits import fit_novelty, update_uncertainty
from .levels import (
    Workspace,
    prepare_workspace,
    save_shipped_weights,
    score_on_images,
)
from .models import FlowerNet
from .recipes import STUDENT, StudentSpec
from .runs import RunOptions, take_log
from .student_int8 import compare_int8_backends, compare_shipped_int8_backends, int8_name, quantise_student
from .student_record import add_latencies, int8_entry, record_students, score_int8, student_entry


def run_level5(opts: RunOptions, spec: StudentSpec = STUDENT, bench_threads: int = 2, compare: bool | None = None,
               compare_only: bool = False, train_only: bool = False, uncertainty_only: bool = False) -> None:
    """Distil, quantise, calibrate and record the student on each protocol, then (shipped protocol) both students'
    novelty checks. ``uncertainty_only`` / ``compare_only`` run that one step on the recorded student."""
    opts.apply_threads()
    for protocol in opts.protocols:
        if uncertainty_only:
            update_uncertainty(protocol, opts.artifacts)
            continue
        ws = prepare_workspace(protocol, opts.data_root, opts.download, opts.artifacts)  # writes the split
        if compare_only:
            compare_shipped_int8_backends(protocol, ws, opts.artifacts, threads=bench_threads)
            continue
        trained = None
        if opts.from_trained:
            trained = load_trained_student(protocol, opts.from_trained)
            take_log(STUDENT.name, protocol, opts)
        run_student(protocol, ws, "cpu" if trained else opts.device, opts.epochs, opts.artifacts, spec,
                    threads=bench_threads, compare=compare, trained=trained, train_only=train_only)
        if protocol == SHIPPED_PROTOCOL and not train_only:  # the shipped students' novelty checks
            for name in (spec.name, int8_name(spec.name)):
                fit_novelty(name, opts.data_root, opts.artifacts)  # torch's thread setting left as it is


def run_student(protocol: str, ws: Workspace, device: str = "cpu", epochs: int | None = None, artifacts_root=None,
                spec: StudentSpec = STUDENT, threads: int = 2, latency_iters: int = 50,
                compare: bool | None = None, trained: tuple[FlowerNet, dict] | None = None,
                train_only: bool = False) -> dict[str, ModelEntry]:
    """Train the student, record it (fp32, "student") and its INT8 twin ("student_int8").

    On the shipped protocol both files go to ``models/`` and the INT8 backends are compared;
    on the other protocol the same steps run in a scratch folder and only metrics are recorded.
    """
    compare = protocol == SHIPPED_PROTOCOL if compare is None else compare
    model, info = trained or train_student(spec, protocol, ws, device, epochs, artifacts_root)
    student = student_entry(model, spec, protocol, info)
    if train_only:  # the machine has only the training images: keep the weights and the record for --from-trained
        save_shipped_weights(student, model, artifacts_root)
        art.record_model(student, artifacts_root)
        return {student.name: student}

    student_logits = score_on_images(student, model, ws, device, artifacts_root)  # shipped fp16 weights, as the app
    model = model.cpu().eval()
    quantised = quantise_student(model, spec, protocol, ws, student.top1("val"), artifacts_root, threads,
                                 latency_iters)
    int8 = int8_entry(student, quantised)
    score_int8(int8, quantised, model.preprocess, student_logits, ws, spec.teacher, artifacts_root)
    add_latencies(student, model, int8, quantised, ws, threads, latency_iters)
    recorded = record_students(student, model, int8, quantised, artifacts_root)
    if compare:
        compare_int8_backends(model, quantised.calibration, quantised.config, ws, protocol, artifacts_root, threads,
                              latency_iters)

    for e in recorded.values():
        print(f"[{e.name}/{protocol}] val top1 {e.top1('val'):.4f} test top1 {e.top1('test'):.4f} "
              f"p50 {e.latency['p50_ms']:.1f} ms", flush=True)
    return recorded
