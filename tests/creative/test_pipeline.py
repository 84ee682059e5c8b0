import numpy as np
import pytest

from genads.creative.fixtures import make_user
from genads.creative.history import HistoryConfig
from genads.creative.metrics import pbs
from genads.creative.ngram import NgramTitleGenerator
from genads.creative.pipeline import CreativePipeline
from genads.creative.style import Style, render_background


@pytest.fixture(scope="module")
def user():
    return make_user(np.random.default_rng(5), 0, n_history=16, noise=0.2)


def _run(user, n, strategy="coarse_to_fine", seed=0):
    rec, images, masks = user
    pipe = CreativePipeline(NgramTitleGenerator(), history=HistoryConfig(n=n, strategy=strategy), sizes=((300, 250),))
    return pipe(rec, images[str(rec.product.image)], [images[str(h.image)] for h in rec.history],
                np.random.default_rng(seed), target_image=images[str(rec.target_image)],
                target_mask=masks[str(rec.target_image)], history_masks=[masks[str(h.image)] for h in rec.history])


def test_pipeline_outputs_and_metrics(user):
    out = _run(user, 10)
    assert len(out.history_used) == 10 and set(out.banners) == {(300, 250)}
    assert out.metrics["factuality"] == 1.0 and out.metrics["repetition"] == 0.0
    assert 0 <= out.metrics["pbs"] <= 1 and {"bleu", "rouge_l", "copy"} <= set(out.metrics)
    assert out.banners[(300, 250)].layout["layers"][2]["text"] == out.title


def test_history_personalises_title_and_background(user):
    rec, images, masks = user
    with_h, without = _run(user, 10), _run(user, 0)
    assert without.style == Style() and not without.history_used
    assert with_h.metrics["rouge_l"] > without.metrics["rouge_l"]
    assert with_h.metrics["pbs"] > without.metrics["pbs"]
    target = images[str(rec.target_image)]
    assert pbs(render_background(with_h.style, (192, 192)), target, None, masks[str(rec.target_image)]) > 0.5


def test_seeded(user):
    assert _run(user, 5, "random", seed=3).history_used == _run(user, 5, "random", seed=3).history_used


def test_mismatched_images_rejected(user):
    rec, images, _ = user
    with pytest.raises(ValueError, match="history images"):
        CreativePipeline(NgramTitleGenerator())(rec, images[str(rec.product.image)], [], np.random.default_rng(0))
