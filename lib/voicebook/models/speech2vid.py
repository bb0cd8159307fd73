"""Speech2Vid (Chung, Jamaludin & Zisserman 2017, "You said that?", section 3, Figs. 4, 6 and 8).

One video frame from a 0.35 s audio window and still images of the target face:

* **audio encoder** (3.2): an AlexNet / VGG-M-like CNN on the ``12 x 35`` MFCC heatmap (3.1:
  13 MFCCs at 100 Hz, the first dropped, 35 steps). Layers conv1, conv2, pool2 (3 x 3, stride
  2 in time only: "/2_t"), conv3-5, pool5, fc6 (512), fc7 (256);
* **identity encoder** (3.2, 4.2): VGG-M-like on ``112 x 112 x 3`` (``x 15`` for five stills,
  conv1 widened to take them): conv1 7 x 7 /2 (96), pool1 /2, conv2 5 x 5 /2 (256), pool2 /2,
  conv3-5 3 x 3 (512) at 7 x 7, pool5, fc6 (512), fc7 (256). The paper starts its conv
  layers from VGG Face, which cannot be downloaded; chapter 5 pre-trains the same encoder as a
  face recogniser of the training people (``IdentityClassifier``) and starts from that;
* **image decoder** (3.2): the two fc7 vectors concatenated (512) are upsampled by transposed
  convolutions 1 -> 7 -> 14 -> 28 -> 56 -> 112; **two skip connections** (4.1) concatenate
  identity-encoder activations into the decoder at matching resolutions: conv3 (7 x 7) and
  conv2 (14 x 14). Not after conv1: the paper found earlier skips made the output copy the
  still. ``skips=False`` is Fig. 11 (b)'s variant without them;
* **deblurring CNN** (3.3, Fig. 8): VDSR-like, 10 conv layers with a residual connection from
  input to output, trained separately on artificially blurred faces (:func:`blur`).

Fig. 6 itself is not in the text we have; kernel sizes and widths follow VGG-M (Chatfield et
al. 2014) and the SyncNet audio stream the paper cites. In the three trained-together modules
batch norm follows every conv and fc layer but the decoder's last (3.2, "trained with batch
normalisation"); the deblurring CNN has none (VDSR).

Sizes at ``width=1``: 36.6 M parameters (audio encoder 5.9 M, identity encoder 9.0 M of which
6.5 M in conv1-5, close to VGG-M's 6.3 M conv layers; decoder 21.7 M, 12.8 M of them in its
first 7 x 7 transposed conv); about 2.8 GFLOP per frame for audio encoder + decoder, 0.9 GFLOP
once per video for the identity; :class:`Deblur` (64 channels) 0.30 M parameters but 7.5
GFLOP per 112 x 112 frame, the largest share of generation time.

Shapes: audio windows ``(batch, 1, 12, 35)``; stills ``(batch, 3 * n_stills, 112, 112)`` or
``(batch, n_stills, 3, 112, 112)`` float in [0, 1]; frames ``(batch, 3, 112, 112)`` in [0, 1].
``width`` scales every channel count (``width=1``: the sizes above); the 256-d embeddings stay.
Generation (3.2, "pre-computing ... the identity encoder"): :meth:`Speech2Vid.encode_identity`
runs once per video, :meth:`Speech2Vid.decode` on batches of audio windows.
"""

from __future__ import annotations

from typing import NamedTuple

import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import audio
from ..checks import AudioError, check_image_range, check_wave

__all__ = ["N_MFCC", "WINDOW", "WINDOW_S", "MFCC_RATE", "SIZE", "mfcc_windows", "Identity", "AudioEncoder",
           "IdentityEncoder", "Decoder", "Speech2Vid", "l1_loss", "speech2vid_loss", "Deblur", "deblur_loss",
           "blur", "stills_tensor", "generate_video", "frames_per_second", "max_video_frames"]

N_MFCC = 12          # 13 computed, the first dropped (3.1)
WINDOW = 35          # MFCC steps per window (3.1)
MFCC_RATE = 100      # Hz (3.1)
MFCC_SR = 16000      # Hz: audio is resampled to this first, so the 512-point FFT spans 32 ms at any input rate
WINDOW_S = WINDOW / MFCC_RATE
SIZE = 112           # face crop side in pixels (3.1)


# ----------------------------------------------------------------------------- audio input (3.1)

def _check_audio(wav, sr: int, name: str) -> np.ndarray:
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    check_wave(x, name, sr=sr, allow_silence=True)               # dtype, channels, NaN / inf
    if x.ndim != 1:
        raise AudioError(f"{name}: expected mono samples of shape (samples,), got {x.shape}")
    if len(x) < WINDOW_S * sr:
        raise AudioError(f"{name}: {len(x) / sr:.3f} s of audio is shorter than one Speech2Vid window "
                         f"({WINDOW_S:.2f} s = {WINDOW} MFCC steps at {MFCC_RATE} Hz)")
    check_wave(x, name, sr=sr)                                     # silence
    return x.astype(np.float32)


def max_video_frames(n_samples: int, sr: int, fps: float = 25.0) -> int:
    """The most video frames ``n_samples`` of audio at ``sr`` Hz can drive at ``fps`` (3.1): frame
    ``t`` is centred on ``t / fps`` seconds, and the last may lie at most one video frame past the
    audio's end, ``floor(duration * fps) + 1`` (a clip's ``ceil(duration * fps)`` frames fit)."""
    return int(np.floor(n_samples / sr * fps + 1 + 1e-6))


def _check_frames_covered(n_frames: int, n_samples: int, sr: int, fps: float) -> None:
    """ValueError if ``n_frames`` video frames at ``fps`` need audio beyond the ``n_samples / sr``
    seconds given by more than one video frame (their windows would repeat the last MFCC step)."""
    most = max_video_frames(n_samples, sr, fps)
    if n_frames > most:
        raise ValueError(f"mfcc_windows: {n_frames} video frames at {fps:g} fps ({n_frames / fps:.3f} s) need more "
                         f"audio than the {n_samples / sr:.3f} s given, which covers at most {most} frames (the last "
                         f"may lie one frame past the audio's end); trim the video to the audio, or pass longer audio")


def mfcc_windows(wav, sr: int, n_frames: int | None = None, fps: float = 25.0) -> torch.Tensor:
    """The audio encoder's inputs, one per video frame (3.1, Fig. 5) -> ``(n_frames, 1, 12, 35)``.

    The audio is first resampled to ``MFCC_SR`` (16 kHz), so the analysis (512-point FFT, 32 ms;
    40 mel bands) is the same whatever ``sr`` the clip comes at. 13 MFCCs every 10 ms
    (:func:`voicebook.audio.mfcc`; step ``k`` is centred at ``k * hop / sr``),
    the first dropped; the window of frame ``t`` is the 35 steps centred on the step nearest
    ``t / fps`` seconds (column 17 is that step). Steps before the start and after the end are
    the edge steps repeated. ``n_frames`` defaults to ``floor(duration * fps)``; more than
    :func:`max_video_frames` (the audio's end plus one video frame) raises ValueError. Raises
    :class:`AudioError` for audio that is not mono, NaN, silent or shorter than 0.35 s.
    """
    x = _check_audio(wav, sr, "Speech2Vid audio")
    n_frames = int(len(x) / sr * fps) if n_frames is None else int(n_frames)
    _check_frames_covered(n_frames, len(x), sr, fps)
    x, sr = audio.resample(torch.from_numpy(x), sr, MFCC_SR), MFCC_SR               # as is at 16 kHz
    hop = int(round(sr / MFCC_RATE))
    feats = audio.mfcc(x, sr, n_mfcc=N_MFCC + 1, hop=hop)[1:]                        # (12, steps)
    if n_frames < 1:
        raise ValueError(f"mfcc_windows: n_frames must be >= 1, got {n_frames}")
    half = WINDOW // 2                                # (the clip only guards rounding at the last step)
    centre = np.clip(np.round(np.arange(n_frames) / fps * sr / hop).astype(np.int64), 0, feats.shape[1] - 1)
    padded = F.pad(feats[None], (half, half), mode="replicate")[0]                   # (12, steps + 34)
    idx = torch.from_numpy(centre)[:, None] + torch.arange(WINDOW)[None, :]           # (n_frames, 35)
    return padded[:, idx].permute(1, 0, 2).unsqueeze(1).contiguous()


# ----------------------------------------------------------------------------- building blocks

def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


def _conv(c_in: int, c_out: int, k: int, stride=1, pad: int | None = None) -> nn.Sequential:
    pad = k // 2 if pad is None else pad
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, pad, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _fc(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU(inplace=True))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """Transposed conv 4 x 4 /2 (doubles the side) + BN + ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class AudioEncoder(nn.Module):
    """MFCC window ``(batch, 1, 12, 35)`` -> fc7 ``(batch, embed)``. conv1-2 keep 12 x 35; pool2
    (3 x 3, stride 1 in frequency, 2 in time) -> 10 x 17; conv3-5; pool5 3 x 3 /2 -> 4 x 8."""

    def __init__(self, width: float = 1.0, embed: int = 256):
        super().__init__()
        c1, c2, c3, f6 = _ch(64, width), _ch(128, width), _ch(256, width), _ch(512, width)
        self.features = nn.Sequential(
            _conv(1, c1, 3), _conv(c1, c2, 3), nn.MaxPool2d(3, stride=(1, 2)),
            _conv(c2, c3, 3), _conv(c3, c3, 3), _conv(c3, c3, 3), nn.MaxPool2d(3, stride=2))
        self.fc6, self.fc7 = _fc(c3 * 4 * 8, f6), _fc(f6, embed)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        if mfcc.ndim != 4 or tuple(mfcc.shape[1:]) != (1, N_MFCC, WINDOW):
            raise ValueError(f"AudioEncoder: expected (batch, 1, {N_MFCC}, {WINDOW}) MFCC windows, got {tuple(mfcc.shape)}")
        return self.fc7(self.fc6(self.features(mfcc).flatten(1)))


class Identity(NamedTuple):
    """What the identity encoder gives the decoder: fc7 ``(b, embed)``, conv3 ``(b, C3, 7, 7)``
    and conv2 ``(b, C2, 14, 14)`` activations (the two skip connections)."""
    fc7: torch.Tensor
    skip7: torch.Tensor
    skip14: torch.Tensor


class IdentityEncoder(nn.Module):
    """Stills ``(batch, 3 * n_stills, 112, 112)`` -> :class:`Identity`. conv1 7 x 7 /2 -> 56,
    pool1 /2 -> 28, conv2 5 x 5 /2 -> 14 (skip), pool2 /2 -> 7, conv3 (skip), conv4, conv5,
    pool5 3 x 3 /2 -> 3, fc6, fc7."""

    def __init__(self, n_stills: int = 1, width: float = 1.0, embed: int = 256):
        super().__init__()
        c1, c2, c3, f6 = _ch(96, width), _ch(256, width), _ch(512, width), _ch(512, width)
        self.conv1 = nn.Sequential(_conv(3 * n_stills, c1, 7, 2), nn.MaxPool2d(3, 2, 1))
        self.conv2, self.pool2 = _conv(c1, c2, 5, 2), nn.MaxPool2d(3, 2, 1)
        self.conv3 = _conv(c2, c3, 3)
        self.conv45 = nn.Sequential(_conv(c3, c3, 3), _conv(c3, c3, 3), nn.MaxPool2d(3, 2))
        self.fc6, self.fc7 = _fc(c3 * 3 * 3, f6), _fc(f6, embed)
        self.channels = (c2, c3)

    def forward(self, stills: torch.Tensor) -> Identity:
        s14 = self.conv2(self.conv1(stills))
        s7 = self.conv3(self.pool2(s14))
        return Identity(self.fc7(self.fc6(self.conv45(s7).flatten(1))), s7, s14)


class Decoder(nn.Module):
    """``(batch, 2 * embed)`` -> frames ``(batch, 3, 112, 112)`` in [0, 1] (sigmoid). A 7 x 7
    transposed conv makes 7 x 7 maps; [skip7 concatenated, conv 3 x 3]; up to 14; [skip14
    concatenated, conv 3 x 3]; up to 28, 56, 112, each followed by a 3 x 3 conv."""

    def __init__(self, width: float = 1.0, embed: int = 256, skip_channels: tuple[int, int] | None = None):
        super().__init__()
        c7, c14, c28, c56, c112 = (_ch(c, width) for c in (512, 256, 128, 64, 32))
        s14, s7 = skip_channels or (0, 0)
        self.fc = nn.Sequential(nn.ConvTranspose2d(2 * embed, c7, 7, bias=False), nn.BatchNorm2d(c7), nn.ReLU(inplace=True))
        self.conv7 = _conv(c7 + s7, c7, 3)
        self.up14, self.conv14 = _up(c7, c14), _conv(c14 + s14, c14, 3)
        self.up = nn.Sequential(_up(c14, c28), _conv(c28, c28, 3), _up(c28, c56), _conv(c56, c56, 3),
                                _up(c56, c112), nn.Conv2d(c112, 3, 3, padding=1))
        self.skips = skip_channels is not None

    def forward(self, z: torch.Tensor, skip7=None, skip14=None) -> torch.Tensor:
        x = self.fc(z[:, :, None, None])
        x = self.conv7(torch.cat([x, skip7], 1) if self.skips else x)
        x = self.up14(x)
        x = self.conv14(torch.cat([x, skip14], 1) if self.skips else x)
        return torch.sigmoid(self.up(x))


def stills_tensor(stills, n_stills: int | None = None) -> torch.Tensor:
    """Still images to the identity encoder's input. ``(112, 112, 3)`` or ``(n, 112, 112, 3)``
    arrays (uint8 0-255, or float in [0, 1]) -> ``(1, 3 n, 112, 112)`` float; tensors already shaped
    ``(b, 3 n, 112, 112)`` or ``(b, n, 3, 112, 112)`` are flattened to ``(b, 3 n, 112, 112)``.
    Float stills outside [0, 1] or with NaN / inf raise ValueError."""
    if isinstance(stills, torch.Tensor) and stills.ndim in (4, 5) and tuple(stills.shape[-2:]) == (SIZE, SIZE):
        check_image_range(stills, "stills")
        x = stills.float() / 255.0 if stills.dtype == torch.uint8 else stills        # already channels-first
        return x.flatten(1, 2) if x.ndim == 5 else x
    x = np.asarray(stills.cpu() if isinstance(stills, torch.Tensor) else stills)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"stills: expected (112, 112, 3) or (n, 112, 112, 3) images, got shape {x.shape}")
    check_image_range(x, "stills")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return torch.from_numpy(x).permute(0, 3, 1, 2).reshape(1, -1, SIZE, SIZE)


class Speech2Vid(nn.Module):
    """Audio encoder + identity encoder + decoder (Figs. 4 and 6), without the deblurring CNN.

    ``n_stills`` 1 or 5 (4.2); ``skips`` False drops both skip connections (Fig. 11 b);
    ``width`` scales channel counts. ``forward(audio, stills)`` is training's one call;
    generation calls :meth:`encode_identity` once and :meth:`decode` per batch of windows.
    """

    def __init__(self, n_stills: int = 1, skips: bool = True, width: float = 1.0, embed: int = 256):
        super().__init__()
        self.n_stills, self.use_skips = n_stills, skips
        self.audio_encoder = AudioEncoder(width, embed)
        self.identity_encoder = IdentityEncoder(n_stills, width, embed)
        self.decoder = Decoder(width, embed, self.identity_encoder.channels if skips else None)

    def encode_identity(self, stills: torch.Tensor) -> Identity:
        """Stills ``(b, 3 n, 112, 112)`` or ``(b, n, 3, 112, 112)`` -> :class:`Identity` (fc7 and
        the skip maps); batch 1 is broadcast over any audio batch in :meth:`decode`."""
        x = stills.flatten(1, 2) if stills.ndim == 5 else stills
        if x.ndim != 4 or tuple(x.shape[1:]) != (3 * self.n_stills, SIZE, SIZE):
            raise ValueError(f"Speech2Vid(n_stills={self.n_stills}): expected stills (batch, {3 * self.n_stills}, "
                             f"{SIZE}, {SIZE}), got {tuple(stills.shape)}")
        return self.identity_encoder(x)

    def decode(self, audio_windows: torch.Tensor, identity: Identity) -> torch.Tensor:
        """MFCC windows ``(b, 1, 12, 35)`` and an :class:`Identity` (batch b or 1) -> frames
        ``(b, 3, 112, 112)``: fc7 of audio and identity concatenated (512), then the decoder."""
        a = self.audio_encoder(audio_windows)
        b = a.shape[0]
        fc7, s7, s14 = (t.expand(b, *t.shape[1:]) if t.shape[0] == 1 else t for t in identity)
        return self.decoder(torch.cat([a, fc7], 1), s7, s14)

    def forward(self, audio_windows: torch.Tensor, stills: torch.Tensor) -> torch.Tensor:
        return self.decode(audio_windows, self.encode_identity(stills))


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. (1), ``sum_n ||y_hat_n - y_n||_1``, divided by the number of values (a mean, so the
    scale does not depend on batch or image size)."""
    return (pred - target).abs().mean()


def speech2vid_loss(model: nn.Module, batch) -> torch.Tensor:
    """``loss_fn`` for :func:`voicebook.train.fit`: batch ``(mfcc windows, stills, target frames)``
    -> eq. (1) between ``model(windows, stills)`` and the target (the window's middle frame, 3.2)."""
    windows, stills, target = batch
    return l1_loss(model(windows, stills), target)


# ----------------------------------------------------------------------------- deblurring (3.3)

class Deblur(nn.Module):
    """VDSR-like deblurring CNN (3.3, Fig. 8): 10 conv 3 x 3 layers, ``channels`` wide, ReLU after
    all but the last, and the input added to the output (the net learns only the residual).
    ``(batch, 3, H, W)`` -> same shape, any H, W. Not clamped (clamp where you display)."""

    def __init__(self, channels: int = 64, layers: int = 10):
        super().__init__()
        convs = [nn.Conv2d(3 if i == 0 else channels, 3 if i == layers - 1 else channels, 3, padding=1)
                 for i in range(layers)]
        body = []
        for conv in convs[:-1]:
            body += [conv, nn.ReLU(inplace=True)]
        self.body, self.last = nn.Sequential(*body), convs[-1]
        for conv in convs[:-1]:                                        # He init, as VDSR
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.last.weight, std=1e-3)                  # start near the identity map
        nn.init.zeros_(self.last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.last(self.body(x))


def deblur_loss(model: nn.Module, batch) -> torch.Tensor:
    """``loss_fn`` for :func:`voicebook.train.fit`: batch ``(blurred, sharp)`` -> L1."""
    blurred, sharp = batch
    return l1_loss(model(blurred), sharp)


def _blur_kernel(sigma: float, motion: int, angle: float, size: int) -> np.ndarray:
    """A Gaussian of ``sigma`` px convolved with a ``motion``-px line at ``angle`` rad -> (size, size)."""
    r = np.arange(size) - size // 2
    xx, yy = np.meshgrid(r, r)
    k = np.zeros((size, size))
    for s in np.linspace(-(motion - 1) / 2, (motion - 1) / 2, max(motion, 1)):
        dx, dy = xx - s * np.cos(angle), yy - s * np.sin(angle)
        k += np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def blur(images: torch.Tensor, seed: int | np.random.Generator = 0, sigma=(0.8, 2.0),
         motion_prob: float = 0.3, max_motion: int = 5) -> torch.Tensor:
    """Artificially blurred training images for :class:`Deblur` (3.3, Fig. 9): each image of
    ``(batch, 3, H, W)`` gets a Gaussian blur of a random sigma in ``sigma`` (px) and, with
    probability ``motion_prob``, a straight motion blur of 2..``max_motion`` px at a random
    angle. Reflect-padded; deterministic by ``seed``."""
    rng = np.random.default_rng(seed)
    b, c, h, w = images.shape
    size = 2 * int(np.ceil(3 * sigma[1] + max_motion / 2)) + 1
    kernels = []
    for _ in range(b):
        motion = int(rng.integers(2, max_motion + 1)) if rng.random() < motion_prob else 1
        kernels.append(_blur_kernel(rng.uniform(*sigma), motion, rng.uniform(0, np.pi), size))
    k = torch.as_tensor(np.stack(kernels), dtype=images.dtype, device=images.device)
    k = k[:, None].repeat_interleave(c, 0)                                  # (b * c, 1, size, size)
    x = F.pad(images.reshape(1, b * c, h, w), (size // 2,) * 4, mode="reflect")
    return F.conv2d(x, k, groups=b * c).reshape(b, c, h, w)


# ----------------------------------------------------------------------------- generation (3.2)

@torch.no_grad()
def generate_video(model: Speech2Vid, wav, sr: int, stills, n_frames: int | None = None, fps: float = 25.0,
                   batch: int = 64, deblur: Deblur | None = None, device=None, amp: bool = True) -> np.ndarray:
    """A talking-face video for ``wav`` (mono float, ``sr`` Hz) and ``stills`` (see
    :func:`stills_tensor`) -> float32 frames ``(n_frames, 112, 112, 3)`` in [0, 1].

    Slides the 0.35 s window over the audio one video frame at a time (3.2, "Discussion"),
    ``batch`` frames per forward pass; the identity encoder runs once (3.2). ``deblur``, if
    given, sharpens every frame (3.3). On CUDA, ``amp`` runs in bfloat16. Both models are put
    in eval mode. ``n_frames`` (default ``floor(duration * fps)``) may exceed the audio by at most
    one video frame (:func:`max_video_frames`; ValueError beyond: trim the video to the audio).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    windows = mfcc_windows(wav, sr, n_frames, fps)
    model.eval().to(device)
    if deblur is not None:
        deblur.eval().to(device)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=amp and device.type == "cuda")
    out = []
    with autocast:
        identity = model.encode_identity(stills_tensor(stills, model.n_stills).to(device))
        for i in range(0, len(windows), batch):
            frames = model.decode(windows[i:i + batch].to(device), identity)
            frames = deblur(frames) if deblur is not None else frames
            out.append(frames.clamp(0, 1).float().permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy()


def frames_per_second(model: Speech2Vid, deblur: Deblur | None = None, seconds: float = 10.0, batch: int = 64,
                      device=None, fps: float = 25.0, repeats: int = 2) -> float:
    """Generation speed (3.2: "faster than twice real-time on a GPU") -> video frames per second,
    the best of ``repeats`` timed runs of :func:`generate_video` on ``seconds`` of noise audio
    after one warm-up run, MFCCs, identity encoding and copying to the host included. Divide
    by ``fps`` (25) for the real-time factor."""
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    stills = rng.uniform(0, 1, (model.n_stills, SIZE, SIZE, 3)).astype(np.float32)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    best = np.inf
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        video = generate_video(model, wav, 16000, stills, fps=fps, batch=batch, deblur=deblur, device=device)
        best = min(best, time.perf_counter() - t0) if i > 0 else best
    return len(video) / best
