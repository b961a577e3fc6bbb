"""The progress bar of ``verbose=1`` (tqdm), one per restart."""


class _Progress:
    """Called by the training loop once per epoch; shows the losses."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, epoch, train_loss, val_loss):
        post = {"loss": f"{train_loss:.4g}"}
        if val_loss is not None:
            post["val_loss"] = f"{val_loss:.4g}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def close(self):
        self.bar.close()


def make_progress(verbose, name, init, n_init, max_iter):
    """A progress callback for restart ``init`` of ``n_init`` (None when
    ``verbose`` is 0)."""
    if not verbose:
        return None
    from tqdm.auto import tqdm

    desc = name if n_init == 1 else f"{name} (init {init + 1}/{n_init})"
    return _Progress(tqdm(total=max_iter, desc=desc, unit="epoch", leave=True))
