"""A pyglet window that shows camera frames to a person (``render_mode='human'``)."""

from __future__ import annotations

import time

from gymnasium.error import DependencyNotInstalled
import numpy as np
import numpy.typing as npt


class Viewer:
    """Shows rgb8 frames scaled up in a window, paced to ``fps``.

    :param title: window caption.
    :param fps: frames per second to pace ``show`` to.
    :param window_size: window width = height, pixels, or (width, height).
    :raises DependencyNotInstalled: when pyglet is missing (``pip install reacher[viz]``).
    :raises RuntimeError: when no display is available (set DISPLAY, or run under xvfb-run).
    """

    def __init__(self, title: str = 'reacher', fps: float = 10,
                 window_size: int | tuple[int, int] = 512) -> None:
        try:
            import pyglet
        except ImportError as error:
            raise DependencyNotInstalled(
                'render_mode="human" needs pyglet: pip install "reacher[viz]"') from error
        self._pyglet = pyglet
        try:
            width, height = ((window_size, window_size) if isinstance(window_size, int)
                             else window_size)
            self.window = pyglet.window.Window(width, height, caption=title)
        except Exception as error:  # pyglet raises several types when no display exists
            raise RuntimeError(
                f'render_mode="human" could not open a window ({error}); set DISPLAY, run '
                'under xvfb-run, or use render_mode="rgb_array"') from error
        self.period = 1.0 / fps
        self._last = 0.0

    def show(self, frame: npt.NDArray[np.uint8]) -> None:
        """Draw one (H, W, 3) uint8 frame."""
        pyglet = self._pyglet
        height, width = frame.shape[:2]
        # pyglet's origin is bottom-left: flip the rows.
        data = np.ascontiguousarray(frame[::-1]).tobytes()
        image = pyglet.image.ImageData(width, height, 'RGB', data, pitch=width * 3)
        texture = image.get_texture()
        pyglet.gl.glTexParameteri(texture.target, pyglet.gl.GL_TEXTURE_MAG_FILTER,
                                  pyglet.gl.GL_NEAREST)
        self.window.switch_to()
        self.window.dispatch_events()
        self.window.clear()
        texture.blit(0, 0, width=self.window.width, height=self.window.height)
        self.window.flip()
        wait = self.period - (time.monotonic() - self._last)
        if wait > 0:
            time.sleep(wait)
        self._last = time.monotonic()

    @property
    def closed(self) -> bool:
        """Whether the person closed the window."""
        return bool(self.window.has_exit)

    def idle(self) -> None:
        """Handle the window's events without drawing (keeps it responsive)."""
        self.window.switch_to()
        self.window.dispatch_events()

    def close(self) -> None:
        """Close the window."""
        self.window.close()
