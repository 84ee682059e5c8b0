"""Optional back-end: a diffusers inpainting model paints the banner background around the product.

The default background (:func:`genads.creative.style.render_background`) is a gradient with
stripes. :class:`InpaintBackground` starts from that same picture with the placed product
cut-out on it, lets a Stable-Diffusion-style inpainting pipeline repaint everything that is not
product (mask white = repaint), prompted with the user's style in words (the palette colours named,
texture or not), and then pastes the cut-out back, so every opaque product pixel is exactly the
cut-out's. It plugs into :func:`genads.creative.banner.compose` and
:class:`genads.creative.pipeline.CreativePipeline` as their ``background`` argument.

Models are only ever loaded from a local folder (a ``save_pretrained`` directory with
``model_index.json`` and one sub-folder per component), with ``local_files_only=True``: nothing is
downloaded. ``diffusers`` (and ``transformers``, for the text encoder) are optional packages,
imported on first use; without them :func:`load_inpaint_pipeline` raises
:class:`MissingDependencyError` naming the package.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genads.creative.style import Colour, Style, render_background

INSTALL_HINT = "pip install diffusers transformers"
COLOUR_NAMES: dict[str, Colour] = {
    "black": (20, 20, 20), "charcoal": (64, 64, 72), "grey": (128, 128, 128), "silver": (192, 192, 196),
    "white": (245, 245, 245), "red": (200, 30, 40), "crimson": (150, 20, 50), "orange": (240, 130, 30),
    "gold": (220, 180, 40), "yellow": (245, 225, 60), "beige": (225, 205, 170), "brown": (120, 75, 40),
    "olive": (120, 120, 40), "green": (40, 160, 70), "mint": (170, 230, 190), "teal": (20, 130, 130),
    "sky blue": (120, 190, 235), "blue": (40, 90, 200), "navy": (20, 30, 90), "purple": (120, 50, 160),
    "lavender": (200, 180, 230), "pink": (240, 150, 190), "magenta": (200, 40, 150),
}


class MissingDependencyError(ImportError):
    """An optional package needed by the inpainting back-end is not installed."""


def require(package: str) -> Any:
    """Import the optional ``package`` or raise :class:`MissingDependencyError` naming it."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise MissingDependencyError(
            f"the inpainting background needs the optional package '{package}', which is not installed "
            f"({e}); install it with `{INSTALL_HINT}` or use the default gradient background") from e


@dataclass(frozen=True)
class InpaintConfig:
    steps: int = 25
    """Denoising steps."""
    guidance_scale: float = 7.5
    strength: float = 1.0
    """1.0: the background is painted from noise; lower keeps more of the gradient it starts from."""
    resolution: int = 512
    """The longer side at which the model runs (rounded to a multiple of 8); the result is resized to the banner."""
    seed: int = 0
    """Seed of the ``torch.Generator`` made for every call (same inputs, same background)."""
    negative_prompt: str = "text, letters, watermark, logo, blurry, distorted"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be >= 1")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale={self.guidance_scale} must be >= 0")
        if not 0 < self.strength <= 1:
            raise ValueError(f"strength={self.strength} must be in (0, 1]")
        if self.resolution < 64:
            raise ValueError(f"resolution={self.resolution} must be >= 64")


def colour_name(rgb: Colour) -> str:
    """The nearest name in :data:`COLOUR_NAMES` (Euclidean distance in RGB)."""
    names = list(COLOUR_NAMES)
    ref = np.array([COLOUR_NAMES[n] for n in names], float)
    return names[int(np.argmin(((ref - np.array(rgb, float)) ** 2).sum(1)))]


def style_prompt(style: Style) -> str:
    """The user's style in words: gradient colours, accent colour, texture."""
    top, bottom, accent = colour_name(style.top), colour_name(style.bottom), colour_name(style.accent)
    gradient = f"{top} background" if top == bottom else f"{top} to {bottom} gradient background"
    texture = "subtle striped texture" if style.texture_strength >= 0.02 else "smooth clean surface"
    return f"product advertisement, {gradient}, {accent} accents, {texture}, soft studio lighting, no text"


def _missing_components(path: Path) -> list[str]:
    index = json.loads((path / "model_index.json").read_text())
    return sorted(name for name, spec in index.items()
                  if not name.startswith("_") and isinstance(spec, list) and len(spec) == 2 and spec[0] is not None
                  and not (path / name).is_dir())


def load_inpaint_pipeline(path: str | Path, device: str | torch.device = "cpu",
                          dtype: torch.dtype | None = None) -> Any:
    """An inpainting pipeline from the local folder ``path`` (never from a hub).

    Raises:
        FileNotFoundError: ``path`` is not a folder, or lacks ``model_index.json`` or a component folder.
        ValueError: diffusers could not build an inpainting pipeline from the folder.
        MissingDependencyError: diffusers (or transformers) is not installed.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"inpainting model folder {path} does not exist (only local folders are loaded, "
                                "e.g. one written by a diffusers pipeline's save_pretrained; nothing is downloaded)")
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"inpainting model folder {path} is incomplete: no model_index.json "
                                "(expected a diffusers save_pretrained folder)")
    try:
        missing = _missing_components(path)
    except (json.JSONDecodeError, AttributeError) as e:
        raise ValueError(f"inpainting model folder {path}: model_index.json is not a diffusers index ({e})") from e
    if missing:
        raise FileNotFoundError(f"inpainting model folder {path} is incomplete: missing component "
                                f"folder(s) {', '.join(missing)}")
    diffusers = require("diffusers")
    require("transformers")
    kwargs = {"local_files_only": True} | ({"torch_dtype": dtype} if dtype is not None else {})
    try:
        pipe = diffusers.AutoPipelineForInpainting.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"could not load an inpainting pipeline from {path} (incomplete or not an inpainting "
                         f"model?): {e}") from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def work_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """(W, H) with the longer side ``resolution``, both sides multiples of 8 and >= 64."""
    w, h = size
    s = resolution / max(w, h)
    return tuple(max(64, round(v * s / 8) * 8) for v in (w, h))  # type: ignore[return-value]


def repaint_mask(size: tuple[int, int], product: Image.Image, position: tuple[int, int]) -> Image.Image:
    """L-mode mask of ``size``: 255 (repaint) everywhere except under the product's opaque-ish pixels."""
    mask = np.full((size[1], size[0]), 255, np.uint8)
    x, y = position
    alpha = np.asarray(product.getchannel("A"))
    region = mask[y:y + product.height, x:x + product.width]
    region[alpha[:region.shape[0], :region.shape[1]] > 0] = 0
    return Image.fromarray(mask, "L")


class InpaintBackground:
    """A banner background painted by an inpainting pipeline around the product (a ``BackgroundRenderer``).

    Args:
        pipe: a diffusers inpainting pipeline (see :func:`load_inpaint_pipeline`).
        config: steps, guidance, resolution, seed.
    """

    def __init__(self, pipe: Any, config: InpaintConfig | None = None) -> None:
        self.pipe = pipe
        self.config = config or InpaintConfig()

    @classmethod
    def from_dir(cls, path: str | Path, config: InpaintConfig | None = None,
                 device: str | torch.device = "cpu") -> InpaintBackground:
        return cls(load_inpaint_pipeline(path, device=device), config)

    def __call__(self, style: Style, size: tuple[int, int], product: Image.Image,
                 position: tuple[int, int]) -> Image.Image:
        """An RGB background of ``size`` (W, H) with ``product`` (RGBA, placed at ``position``) pasted back exactly."""
        if product.mode != "RGBA":
            raise ValueError(f"product cut-out must be RGBA, got mode {product.mode}")
        cfg = self.config
        init = render_background(style, size).convert("RGBA")
        init.alpha_composite(product, position)
        mask = repaint_mask(size, product, position)
        ws = work_size(size, cfg.resolution)
        generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
        out = self.pipe(prompt=style_prompt(style), negative_prompt=cfg.negative_prompt or None,
                        image=init.convert("RGB").resize(ws, Image.BICUBIC), mask_image=mask.resize(ws, Image.NEAREST),
                        height=ws[1], width=ws[0], num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                        strength=cfg.strength, generator=generator, output_type="pil").images[0]
        canvas = out.convert("RGB").resize(size, Image.BICUBIC).convert("RGBA")
        canvas.alpha_composite(product, position)
        return canvas.convert("RGB")
