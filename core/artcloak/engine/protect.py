"""The seam: hosts build jobs and settings, the engine returns protected samples.

``Engine`` loads its models once and protects any number of in-memory images
(``protect``); ``files.protect_files`` wraps it for files on disk. Images are grouped
by working size and optimised together; each keeps its own target, mask, seed and
budget guarantee, and a failure of one never spoils the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .. import memory
from ..errors import ArtcloakError, Cancelled, ModelLoadError
from ..progress import SILENT, Listener
from ..results import LatentShift
from ..settings import ModelSettings, ProtectionSettings, Target
from . import budget as budget_module
from .encoders import choose_device, describe_encoder, load_encoders
from .encoders.lean import make_lean
from .encoders.model import TaeEncoder
from .jobs import Failed, ImageJob, ImageResult, check_jobs
from .masking import budget_shares
from .optimize import Batch, autocast_dtype, input_size, optimise, target_detail
from .resizing import (
    RoundTrip,
    resize,
    shrink_keep_mask,
    upsample,
    working_size,
)
from .targets import target_images
from .targets.resolve import image_target, resolve_run_target
from .view_latents import ViewLatents, latent_shift

log = logging.getLogger(__name__)

TARGET_CACHE_SIZE = 64  # target latents kept per engine (per target, working size, encoder)


class Engine:
    """Models loaded once, reused for every image and every call."""

    def __init__(
        self,
        models: ModelSettings,
        batch_size: int | None = None,
        encoders: list | None = None,
        decoders: bool = False,
    ) -> None:
        """``encoders``: already loaded VaeEncoders (e.g. a host's own VAE) instead of
        loading ``models.encoders``. ``decoders``: load each model's decoder too, to show what
        the model sees (``model_view``); protecting needs only the encoders, and a full VAE's
        decoder is about 0.2 GB. SettingsError for models that cannot be (checked here, before
        anything loads)."""
        models.check()
        self.models = models
        self.decoders = decoders
        self.device = choose_device(models.device)
        self.batch_size = batch_size or (8 if self.device.type == "cuda" else 1)
        self._encoders: list | None = encoders
        self._lpips = None
        self._lean = False
        self._target_latents: dict[tuple, torch.Tensor] = {}
        self._view_latents = ViewLatents()

    @property
    def encoders(self) -> list:
        if self._encoders is None:
            try:
                self._encoders = load_encoders(
                    self.models.encoders,
                    device=self.device,
                    config=self.models.encoder_config,
                    allow_pickle=self.models.allow_pickle,
                    encoder_only=not self.decoders,
                )
            except ModelLoadError as error:
                raise self._with_lpips(error) from None
        if not self._lean:
            for encoder in self._encoders:  # frozen: keep less for the backward pass
                make_lean(encoder.vae.encoder)
            memory.fit_to_encoders(any(not isinstance(e, TaeEncoder) for e in self._encoders))
            self._lean = True
        return self._encoders

    @property
    def lpips(self):
        if self._lpips is None:
            self._lpips = budget_module.load_lpips(
                self.models.lpips_net, self.device, self.models.lpips_random_backbone
            )
        return self._lpips

    def _with_lpips(self, error: ModelLoadError) -> ModelLoadError:
        """The encoder's error, saying too when LPIPS's weights cannot be had: both at once,
        rather than the second after the first is solved."""
        lpips = budget_module.backbone_unavailable(
            self.models.lpips_net, self.models.lpips_random_backbone, too=True
        )
        if lpips is None or self._lpips is not None:
            return error
        return ModelLoadError(f"{error} {lpips}", named=error.named)

    def load_models(self) -> None:
        """Load encoders and LPIPS now (they load lazily otherwise)."""
        _ = self.encoders, self.lpips

    def describe(self) -> dict:
        return {
            "encoders": [describe_encoder(encoder) for encoder in self.encoders],
            "device": str(self.device),
            "precision": self.precision_used(),
            "lpips": {
                "net": self.models.lpips_net.value,
                "backbone": "random (not perceptual: tests and offline benches only)"
                if self.models.lpips_random_backbone
                else "ImageNet",
            },
        }

    def precision_used(self) -> str:
        """The arithmetic the encoder passes use here (``auto`` resolved for this device)."""
        names = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
        return names[autocast_dtype(self.models.precision, self.device)]

    def prepare_run(
        self, settings: ProtectionSettings, sources: Sequence[Path] = ()
    ) -> ProtectionSettings:
        """The settings with the run's target made concrete (``sources``: the run's files,
        for ``auto``): concept anchors generated, the auto style chosen, or the textures
        instead when no diffusion model can be had. Loads the models. The settings come
        checked (``run.Run`` checks them once)."""
        self.load_models()
        return resolve_run_target(self, settings, sources)

    def image_target(
        self, settings: ProtectionSettings, colour: np.ndarray, max_value: int
    ) -> Target | None:
        """This image's own target where the run's asks for one (a generated style: the
        artwork re-rendered), else None."""
        return image_target(self, settings, colour, max_value)

    def resolution(self, settings: ProtectionSettings) -> int:
        return settings.resolution or max(encoder.train_resolution for encoder in self.encoders)

    def protect(
        self,
        jobs: Sequence[ImageJob],
        settings: ProtectionSettings,
        listener: Listener = SILENT,
    ) -> list[ImageResult | Failed]:
        """Protect every job; results in the same order, a Failed for each one that could not be.
        The settings and each job's target are checked first (hosts use ``run.Run``, which
        checks them once per run and calls ``protect_checked``)."""
        check_jobs(jobs, settings)
        return self.protect_checked(jobs, settings, listener)

    def protect_checked(
        self,
        jobs: Sequence[ImageJob],
        settings: ProtectionSettings,
        listener: Listener = SILENT,
    ) -> list[ImageResult | Failed]:
        """``protect`` for settings and jobs already checked."""
        self.load_models()
        results: list[ImageResult | Failed | None] = [None] * len(jobs)
        for indices in self._batches(jobs, settings):
            chunk = [jobs[i] for i in indices]
            try:
                outcomes = self._protect_batch(chunk, settings, listener)
            except Cancelled:
                raise
            except ArtcloakError as error:
                outcomes = [Failed(job.name, str(error)) for job in chunk]
            for index, outcome in zip(indices, outcomes, strict=True):
                results[index] = outcome
        return results  # type: ignore[return-value]

    def work_groups(
        self, jobs: Sequence[ImageJob], settings: ProtectionSettings
    ) -> dict[tuple[int, int], list[int]]:
        """Indices of jobs by the working size (width, height) they are optimised at."""
        resolution = self.resolution(settings)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(working_size(*job.size, resolution), []).append(index)
        return groups

    def _batches(self, jobs: Sequence[ImageJob], settings: ProtectionSettings) -> list[list[int]]:
        """Indices of jobs grouped by working size, in chunks of at most batch_size."""
        return [
            indices[start : start + self.batch_size]
            for indices in self.work_groups(jobs, settings).values()
            for start in range(0, len(indices), self.batch_size)
        ]

    def _protect_batch(
        self, jobs: list[ImageJob], settings: ProtectionSettings, listener: Listener
    ) -> list[ImageResult | Failed]:
        started = time.perf_counter()
        work_w, work_h = working_size(*jobs[0].size, self.resolution(settings))
        batch = self._build_batch(jobs, settings, (work_h, work_w))
        outcome = optimise(
            batch,
            self.encoders,
            self.lpips,
            settings.budget(),
            settings.effort(),
            self.models.precision,
            listener=listener,
            names=tuple(job.name for job in jobs),
        )
        shared_seconds = (time.perf_counter() - started) / len(jobs)
        results: list[ImageResult | Failed] = []
        for index, job in enumerate(jobs):
            listener.check_cancel()
            finish_started = time.perf_counter()
            try:
                before_view = self._view_of_before(
                    job, settings, batch.base[index], (work_h, work_w)
                )
                protected = self._finish(
                    job, outcome.delta[index], settings, (work_w, work_h), before_view
                )
            except Cancelled:
                raise
            except ArtcloakError as error:
                results.append(Failed(job.name, str(error)))
                continue
            protected.encoder_passes = outcome.encoder_passes
            protected.seconds = shared_seconds + time.perf_counter() - finish_started
            protected.losses = outcome.losses
            results.append(protected)
        return results

    def _build_batch(
        self, jobs: list[ImageJob], settings: ProtectionSettings, work_hw: tuple[int, int]
    ) -> Batch:
        bases, starts, frees, rows, cols = [], [], [], [], []
        for job in jobs:
            full_hw = job.colour.shape[:2]
            base = resize(self._tensor(job.before, job.max_value), work_hw)[0]
            bases.append(base)
            if job.original is None:
                starts.append(None)
            else:
                incoming = resize(self._tensor(job.colour, job.max_value), work_hw)[0]
                starts.append(incoming - base)
            free = torch.ones(full_hw) if job.free is None else torch.from_numpy(job.free)
            frees.append(shrink_keep_mask(free, work_hw))
            trip = RoundTrip.between(full_hw, work_hw)
            rows.append(trip.rows)
            cols.append(trip.cols)
        base = torch.stack(bases)
        targets = self._batch_targets(jobs, settings, work_hw)
        return Batch(
            base=base,
            targets=targets,
            free=torch.stack(frees).to(self.device),
            grey=torch.tensor([job.grey for job in jobs], device=self.device),
            rows=torch.stack(rows).unsqueeze(1).to(self.device),
            cols=torch.stack(cols).unsqueeze(1).to(self.device),
            seeds=[settings.seed] * len(jobs),
            shares=budget_shares(base) if settings.adaptive else None,
            robust=settings.robust,
            starts=None if all(start is None for start in starts) else starts,
            toward=target_detail(
                base,
                torch.stack([self._target_pixels(job.settings(settings), work_hw) for job in jobs]),
            ),
            base_latents=self._base_latents(jobs, settings, targets, base, work_hw),
        )

    def _base_latents(
        self,
        jobs: list[ImageJob],
        settings: ProtectionSettings,
        targets: list[torch.Tensor],
        bases: torch.Tensor,
        work_hw: tuple[int, int],
    ) -> list[torch.Tensor] | None:
        """Per encoder, the originals' latents as ``encode_view`` has them (remembered there for
        the report's "before"), or None where an encoder sees the working view resized (a
        TAESana at a size not a multiple of 32): the loop then encodes what it sees."""
        sizes = [input_size(e, t.shape[-2:]) for e, t in zip(self.encoders, targets, strict=True)]
        if any(tuple(size) != tuple(work_hw) for size in sizes):
            return None
        latents = [
            self.encode_view(
                job.before,
                job.max_value,
                job.settings(settings),
                self._view_of_before(job, settings, base, work_hw),
            )
            for job, base in zip(jobs, bases, strict=True)
        ]
        return [torch.stack(per_encoder) for per_encoder in zip(*latents, strict=True)]

    def _batch_targets(
        self, jobs: list[ImageJob], settings: ProtectionSettings, size_hw: tuple[int, int]
    ) -> list[torch.Tensor]:
        """Per encoder, the (B, C, h, w) target latents of the jobs' views at ``size_hw``."""
        return [
            torch.stack(
                [self._target_latent(job.settings(settings), size_hw, index) for job in jobs]
            )
            for index in range(len(self.encoders))
        ]

    def _target_latent(
        self, settings: ProtectionSettings, work_hw: tuple[int, int], index: int
    ) -> torch.Tensor:
        """Encoder ``index``'s target latent (the mean over anchors), computed once per
        target and working size."""
        key = (settings.mode, settings.target, work_hw, index)
        if key not in self._target_latents:
            if len(self._target_latents) >= TARGET_CACHE_SIZE:
                self._target_latents.clear()
            images = target_images(settings.target, settings.mode, work_hw[1], work_hw[0])
            stacked = torch.stack([self._tensor(image, 1)[0] for image in images])
            with torch.no_grad():
                self._target_latents[key] = self.encoders[index](stacked).float().mean(0)
        return self._target_latents[key]

    def _target_pixels(
        self, settings: ProtectionSettings, work_hw: tuple[int, int]
    ) -> torch.Tensor:
        """(3, h, w): the target as pixels at the working size (the mean over anchors)."""
        images = target_images(settings.target, settings.mode, work_hw[1], work_hw[0])
        return torch.stack([self._tensor(image, 1)[0] for image in images]).mean(0)

    def _tensor(self, samples: np.ndarray, max_value: int) -> torch.Tensor:
        return budget_module.to_tensor(samples, max_value, self.device)

    def _finish(
        self,
        job: ImageJob,
        delta: torch.Tensor,
        settings: ProtectionSettings,
        work_size: tuple[int, int],
        before_view: torch.Tensor | None,
    ) -> ImageResult:
        """Full-resolution perturbation -> quantised samples that hold the budget."""
        full_hw = job.colour.shape[:2]
        full = upsample(delta, full_hw)
        if job.free is not None:
            full = full * torch.from_numpy(job.free).to(full.device)
        perturbation = full.permute(1, 2, 0).cpu().numpy()
        guaranteed = budget_module.guarantee(
            self.lpips, job.before, perturbation, settings.budget(), job.max_value
        )
        colour = guaranteed.samples
        if job.grey:
            colour = np.repeat(colour[..., :1], 3, axis=2)
        latent = self.latent_figures(
            job.before, colour, job.max_value, job.settings(settings), original_view=before_view
        )
        return ImageResult(
            name=job.name,
            colour=colour,
            measured=guaranteed.measured.figures(settings.budget(), kept=guaranteed.scale),
            latent=latent,
            working_size=work_size,
            encoder_passes=0,
            seconds=0.0,
        )

    def latent_figures(
        self,
        original: np.ndarray,
        protected: np.ndarray,
        max_value: int,
        settings: ProtectionSettings,
        toward_target: bool = True,
        original_view: torch.Tensor | None = None,
    ) -> list[LatentShift]:
        """Per encoder, on the model's view of the samples: the relative latent shift and, with
        ``toward_target``, the share of the original-to-target latent distance closed.
        ``original_view``: the original's view, where the caller has it already."""
        height, width = original.shape[:2]
        targets = (
            self.target_latents(settings, width, height)
            if toward_target
            else [None] * len(self.encoders)
        )
        before = self.encode_view(original, max_value, settings, original_view)
        after = self.encode_view(protected, max_value, settings)
        return [
            latent_shift(encoder.source, b, a, t)
            for encoder, b, a, t in zip(self.encoders, before, after, targets, strict=True)
        ]

    def encode_view(
        self,
        samples: np.ndarray,
        max_value: int,
        settings: ProtectionSettings,
        view: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Latent means, one per encoder, of the model's view of an image (fp32). ``view``:
        that view (1, 3, h, w), where the caller has made it already (for a 4096x4096 image,
        making it costs about 0.3 s)."""
        if view is None:
            height, width = samples.shape[:2]
            work_w, work_h = working_size(width, height, self.resolution(settings))
            view = resize(self._tensor(samples, max_value), (work_h, work_w))
        return self._view_latents.get(view, self._encode)

    def _view_of_before(
        self,
        job: ImageJob,
        settings: ProtectionSettings,
        base: torch.Tensor,
        work_hw: tuple[int, int],
    ) -> torch.Tensor | None:
        """The batch's view of the job's original (``base``) as ``encode_view`` would make
        it, or None where the job's own working size is not the batch's."""
        own_w, own_h = working_size(*job.size, self.resolution(job.settings(settings)))
        return base.unsqueeze(0) if (own_h, own_w) == tuple(work_hw) else None

    def _encode(self, view: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return [encoder(view)[0].float() for encoder in self.encoders]

    def target_latents(
        self, settings: ProtectionSettings, width: int, height: int
    ) -> list[torch.Tensor]:
        work_w, work_h = working_size(width, height, self.resolution(settings))
        return [
            self._target_latent(settings, (work_h, work_w), index)
            for index in range(len(self.encoders))
        ]
