"""Small torch helpers: devices, scoped seeding and tensor conversion."""

import contextlib

import numpy as np
import torch


def device_available(device):
    """Whether the :class:`torch.device` ``device`` can be used here."""
    if device.type == "cuda":
        return torch.cuda.is_available() and (
            device.index is None or device.index < torch.cuda.device_count()
        )
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return device.type == "cpu"


def resolve_device(device):
    """Turn a ``device`` string into an available :class:`torch.device`.

    ``"auto"`` picks CUDA, then MPS, then CPU. An unknown or unavailable device
    raises ``ValueError``.
    """
    if device == "auto":
        for name in ("cuda", "mps"):
            if device_available(torch.device(name)):
                return torch.device(name)
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'cpu', 'cuda', "
            "'cuda:N', 'mps' or 'auto'."
        ) from exc
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device={device!r} is not supported; use 'cpu', 'cuda', 'cuda:N', 'mps' "
            "or 'auto'."
        )
    if not device_available(dev):
        what = "CUDA" if dev.type == "cuda" else "MPS"
        if dev.type == "cuda" and torch.cuda.is_available():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) "
                "are available."
            )
        raise ValueError(
            f"device={device!r} was requested but {what} is not available; use "
            "device='cpu' or device='auto'."
        )
    return dev


@contextlib.contextmanager
def torch_seed(seed, device):
    """Seed torch's global RNG inside the block and restore the caller's on exit."""
    devices = []
    if device.type == "cuda":
        devices = [
            device.index if device.index is not None else torch.cuda.current_device()
        ]
    with torch.random.fork_rng(
        devices=devices, device_type=device.type if devices else "cuda"
    ):
        torch.manual_seed(seed)
        yield


def to_tensor(X, device, dtype=torch.float32):
    """Copy an array-like into a new tensor on ``device``."""
    np_dtype = {torch.long: np.int64, torch.float64: np.float64}.get(dtype, np.float32)
    return torch.as_tensor(np.array(X, dtype=np_dtype, copy=True), device=device)


def to_numpy(T, dtype=None):
    """Move a tensor to host memory as a numpy array (optionally cast)."""
    arr = T.detach().to("cpu").numpy()
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


@contextlib.contextmanager
def training_context():
    """What a fit needs of torch's global state, whatever the caller's:
    autograd on (a fit called under ``torch.no_grad()`` or
    ``torch.inference_mode()`` still trains) and float32 as the default dtype
    (the models are float32; under a float64 default their new parameters
    would not match the data). The default dtype is set, and restored, only
    when it is not float32 already."""
    old = torch.get_default_dtype()
    if old != torch.float32:
        torch.set_default_dtype(torch.float32)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        if old != torch.float32:
            torch.set_default_dtype(old)


@contextlib.contextmanager
def torch_threads(n_threads):
    """Use ``n_threads`` intra-op CPU threads inside the block (None: unchanged)."""
    if n_threads is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)
