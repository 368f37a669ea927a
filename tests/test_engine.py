import math

import torch

from flowers_core.training.engine import CachedViews, TrainConfig, distillation_loss, fit, lr_at


def test_lr_schedule_warms_up_then_decays_to_zero():
    total, warm = 100, 10
    lrs = [lr_at(s, total, warm, "cosine") for s in range(total)]
    assert lrs[0] < lrs[9] == 1.0
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 0.01
    assert lr_at(50, total, warm, "constant") == 1.0


def test_distillation_loss_is_zero_kl_when_student_matches_teacher():
    logits = torch.randn(4, 6)
    teacher = torch.softmax(logits / 3.0, -1)
    y = logits.argmax(-1)
    pure_kd = distillation_loss(logits, teacher, y, alpha=1.0, temperature=3.0)
    assert abs(pure_kd.item()) < 1e-5
    other = distillation_loss(torch.randn(4, 6), teacher, y, alpha=1.0, temperature=3.0)
    assert other.item() > 0


def test_cached_views_draws_one_view_per_sample():
    views = torch.stack([torch.zeros(10, 2), torch.ones(10, 2)])
    src = CachedViews(views, torch.arange(10), batch_size=4, seed=0)
    batches = list(src)
    assert len(batches) == len(src) == 3
    assert sum(len(b[1]) for b in batches) == 10
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))


def test_fit_learns_a_separable_problem_and_logs(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    y = (x[:, 0] > 0).long()
    module = torch.nn.Linear(8, 2)
    src = CachedViews(x[None], y, batch_size=32)
    cfg = TrainConfig(epochs=5, lr=0.05, patience=10)
    result = fit(module, module, src, x, y, cfg, tmp_path / "log.jsonl")
    assert result["history"][-1]["val_acc"] > 0.9
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 5
    assert result["best"]["epoch"] >= 1 and not math.isnan(result["history"][0]["train_loss"])
