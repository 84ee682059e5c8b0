import numpy as np
import pandas as pd
import pytest

from genads.encode.cache import VectorCache, content_key
from genads.encode.text import TextEncoder, has_text, item_texts, text_cache


def test_item_texts_joins_non_empty_fields():
    cat = pd.DataFrame({"title": ["Drill", ""], "brand": ["Acme", None], "category": ["", "Tools"],
                        "description": ["Cordless.", "x" * 2000]})
    texts = item_texts(cat, max_chars=100)
    assert texts[0] == "Drill. Acme. Cordless."
    assert texts[1].startswith("Tools. x") and len(texts[1]) == 100
    with pytest.raises(ValueError, match="title"):
        item_texts(pd.DataFrame({"brand": ["a"]}))
    assert has_text(cat) and not has_text(pd.DataFrame({"title": ["", ""], "description": ["", ""]}))


def test_cache_round_trip_and_dimension_check(tmp_path):
    cache = VectorCache(tmp_path, "m")
    keys = [content_key("a"), content_key("b")]
    cache.add(keys, np.eye(2, dtype=np.float32))
    reread = VectorCache(tmp_path, "m")
    found, vecs = reread.lookup([content_key("b"), content_key("zzz")])
    assert found.tolist() == [True, False]
    assert vecs[0].tolist() == [0.0, 1.0] and vecs[1].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="dims"):
        reread.add([content_key("c")], np.ones((1, 3), dtype=np.float32))
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
    with pytest.raises(ValueError, match="cache name"):
        VectorCache(tmp_path, "../x")


def test_minilm_encodes_offline_and_uses_cache(tmp_path):
    enc = TextEncoder(batch_size=2)
    texts = ["cordless drill with two batteries", "power drill, cordless", "organic green tea"]
    cache = text_cache(tmp_path)
    v = enc.encode(texts, cache=cache, progress=False)
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2]  # the two drills are closer than drill vs tea
    assert len(text_cache(tmp_path)) == 3

    class Boom(TextEncoder):
        @property
        def model(self):
            raise AssertionError("cached texts must not be encoded again")

    again = Boom().encode(texts[::-1], cache=text_cache(tmp_path), progress=False)
    assert np.allclose(again, v[::-1], atol=1e-6)
