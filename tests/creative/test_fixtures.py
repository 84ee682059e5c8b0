import numpy as np
from PIL import Image

from genads.creative.fixtures import CATEGORIES, draw_product, make_user, write_fixtures
from genads.creative.records import load_records


def test_products_are_rgba_cutouts():
    for cat in CATEGORIES:
        img = draw_product(cat, (100, 150, 200))
        a = np.asarray(img)[..., 3]
        assert img.mode == "RGBA" and a[0, 0] == 0 and 0.1 < (a > 0).mean() < 0.9


def test_user_history_follows_style():
    rec, images, masks = make_user(np.random.default_rng(3), 0, n_history=12, noise=0.0)
    assert len(rec.history) == 12 and rec.target_title
    assert all(str(h.image) in images and images[str(h.image)].size == masks[str(h.image)].shape[::-1] for h in rec.history)
    assert set(rec.target_title.split()) <= {w for sp in rec.product.selling_points for w in sp.split()}


def test_write_and_load(tmp_path):
    path = write_fixtures(tmp_path, n_users=2, seed=1, n_history=4)
    recs = load_records(path).records
    assert len(recs) == 2
    assert Image.open(recs[0].product.image).mode == "RGBA"
    assert recs[0].target_image.exists() and all(h.image.exists() for h in recs[0].history)
    masks = np.load(tmp_path / "masks.npz")
    assert "img__u0_target.png" in masks.files
