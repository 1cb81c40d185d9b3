"""Camera motion removal: a shaking, zooming picture with one object moving on its own."""

import torch

from avsplit.dsp.camera import camera_motion, remove_camera_motion


def _scene(shift=(0.7, -0.4), zoom=0.3):
    h, w = 24, 32
    ys = torch.linspace(-1, 1, h)
    xs = torch.linspace(-1, 1, w)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    camera = torch.stack([shift[0] + zoom * gx, shift[1] + zoom * gy])  # (2, h, w)
    own = torch.zeros(2, h, w)
    own[1, 4:12, 6:14] = 2.5  # one object jumps down on its own
    return camera, own


def test_camera_motion_is_removed_and_an_objects_own_motion_kept():
    camera, own = _scene()
    flow = (camera + own)[None, None]  # (1, 1, 2, h, w)
    left = remove_camera_motion(flow)[0, 0]
    assert left.shape == camera.shape
    background = own.abs().sum(0) == 0
    assert left[:, background].abs().max() < 1e-3
    # the object keeps (nearly) its own motion
    assert torch.allclose(left[1, 4:12, 6:14], torch.full((8, 8), 2.5), atol=1e-3)


def test_a_still_camera_gives_no_camera_motion():
    _, own = _scene()
    fitted = camera_motion(own[None].repeat(3, 1, 1, 1))  # (3, 2, h, w), several steps at once
    assert fitted.abs().max() < 1e-3
