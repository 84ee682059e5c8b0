"""Personalised creatives after Uni-AdGen: history sampling, selling-point-constrained titles, banners.

Modules, in pipeline order:

* ``records``: PAd1M-style records (product, selling points, clicked ads, target) from JSONL/CSV,
  and the AdvertiseGen loader (attributes "k#v*k#v" -> selling points, summary -> copy);
  ``fixtures``: generated records with PIL-drawn RGBA products and per-user ad styles;
  ``selling_points``: typed selling-point phrases (brand, type, material, size, benefit, use) from
  titles, descriptions and attributes.
* ``text``: jieba (Chinese) / regex (English) words; ``encoders``: hashing and MiniLM text vectors.
* ``history``: random, most-similar and coarse-to-fine (similarity-weighted pool + MMR) sampling,
  with the leakage guard.
* ``ngram`` (baseline) and ``transformer``: titles made only of selling-point words, no repeats,
  within a length limit.
* ``style`` and ``banner``: background from the history images' palette/gradient/texture, exact
  product cut-out, title and CTA layers; PNG, SVG (editable layers) and layout JSON.
* ``inpaint`` (optional): a diffusers inpainting pipeline, loaded only from a local folder, paints
  the background around the product; the cut-out's pixels are pasted back exact.
* ``lm``/``lm_titles``/``constraint``/``title_rules``: the pretrained LM's titles, LoRA, and the
  decoding rules (factual words, one script, a length budget, no repeats, a finished end).
* ``metrics``: BLEU, ROUGE-L, factuality, repetition, copy rate, exaggeration, PBS (its offline
  image embedding is documented there); ``judge``: checks of finished titles that share no rule
  with the decoder.
* ``pipeline``: ``CreativePipeline`` ties them together; ``demo_step`` is the demo's section.
"""
