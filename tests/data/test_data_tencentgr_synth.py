"""The synthetic TencentGR data set: deterministic, imports with its multimodal embeddings and user features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genads.data.dataset import load_dataset
from genads.data.loaders import TencentGRSource
from genads.data.tencentgr_synth import ADVERTISER_FEATURE, SynthConfig, write_tencentgr
from genads.data.validate import ImportValidationError
from tests.data.datahelpers import do_import

SMALL = SynthConfig(users=60, items=40, topics=4, events_per_user=(3, 8))


def test_same_arguments_same_bytes(tmp_path):
    a, b = write_tencentgr(tmp_path / "a", SMALL), write_tencentgr(tmp_path / "b", SMALL, block=7)
    assert a.read_bytes() == b.read_bytes()
    emb = "creative_emb/emb_81_32/part-00000.json"
    assert (tmp_path / "a" / emb).read_bytes() == (tmp_path / "b" / emb).read_bytes()


def test_imports_with_embeddings_advertisers_and_user_features(tmp_path):
    seq = write_tencentgr(tmp_path / "tg", SMALL)
    report = do_import(TencentGRSource(seq, advertiser_feature=ADVERTISER_FEATURE, emb_feature="81"), tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    assert report.n_users == 60 and len(ds.catalogue) <= 40
    vectors = np.stack(ds.catalogue["embedding"].to_numpy())
    assert vectors.shape == (len(ds.catalogue), 32) and np.isfinite(vectors).all()
    lines = (tmp_path / "tg/creative_emb/emb_81_32/part-00000.json").read_text().splitlines()
    given = {str(r["anonymous_cid"]): r["emb"] for r in map(json.loads, lines)}
    first = ds.catalogue.iloc[0]
    np.testing.assert_allclose(first["embedding"], given[str(first["ad_id"])], rtol=1e-6)
    assert ds.meta["source"]["user_features"] == {"103": 60, "104": 60}
    assert ds.meta["source"]["embedding"]["items_with_embedding"] == 40
    assert ds.catalogue["advertiser_id"].nunique() > 1


def test_a_bad_embedding_is_named(tmp_path):
    seq = write_tencentgr(tmp_path / "tg", SMALL)
    part = tmp_path / "tg/creative_emb/emb_81_32/part-00000.json"
    lines = part.read_text().splitlines()
    rec = json.loads(lines[2])
    lines[2] = json.dumps({**rec, "emb": rec["emb"][:5]})  # the wrong length
    part.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportValidationError, match=r"item_feat_dict\.json:\d+: field 'emb .*': bad_value.*length 32"):
        do_import(TencentGRSource(seq, emb_feature="81"), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_missing_embedding_folder_is_an_error(tmp_path):
    seq = write_tencentgr(tmp_path / "tg", SMALL)
    with pytest.raises(FileNotFoundError, match="no emb_99_<dim> folder"):
        do_import(TencentGRSource(seq, emb_feature="99"), tmp_path / "ds")


def _as_taac_oids(folder, offset: int = 900_000) -> dict[str, int]:
    """Rewrite the synthetic embeddings as the real TAAC files hold them: keyed by original ids (OID, strings),
    with indexer.pkl mapping OID -> the re-ids (RID) of seq.jsonl. Returns the OID -> RID map."""
    import pickle

    part = folder / "creative_emb/emb_81_32/part-00000.json"
    recs = [json.loads(line) for line in part.read_text().splitlines()]
    oid = {int(r["anonymous_cid"]): f"cid{int(r['anonymous_cid']) + offset}" for r in recs}
    part.write_text("".join(json.dumps({"anonymous_cid": oid[int(r["anonymous_cid"])], "emb": r["emb"]}) + "\n"
                            for r in reversed(recs)))
    indexer = {"i": {o: rid for rid, o in oid.items()}, "u": {}, "f": {}}
    (folder / "indexer.pkl").write_bytes(pickle.dumps(indexer))
    return indexer["i"]


def test_real_layout_embeddings_join_through_the_indexer(tmp_path):
    """TAAC's embeddings are keyed by original ids: joining them on seq.jsonl's re-ids gave every ad another's
    vector (or none). indexer.pkl, found beside seq.jsonl, maps them."""
    seq = write_tencentgr(tmp_path / "tg", SMALL)
    before = {str(r["anonymous_cid"]): r["emb"] for r in map(json.loads, (tmp_path / "tg/creative_emb/emb_81_32/"
                                                                          "part-00000.json").read_text().splitlines())}
    _as_taac_oids(tmp_path / "tg")
    do_import(TencentGRSource(seq, emb_feature="81"), tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    for _, row in ds.catalogue.iterrows():
        np.testing.assert_allclose(row["embedding"], before[str(row["ad_id"])], rtol=1e-6)
    assert "indexer.pkl" in ds.meta["source"]["embedding_ids"]


def test_an_indexer_that_would_run_code_is_refused(tmp_path):
    import os
    import pickle

    seq = write_tencentgr(tmp_path / "tg", SMALL)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "tg/indexer.pkl").write_bytes(pickle.dumps({"i": {"a": Evil()}}))
    with pytest.raises(ValueError, match=r"indexer\.pkl: not a plain-data indexer pickle .*refused"):
        do_import(TencentGRSource(seq, emb_feature="81"), tmp_path / "ds")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "ds").exists()
