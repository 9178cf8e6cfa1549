"""Draw docs/camera_layout.png: the module's pixel grid, quabos and their rotations.

Run:  uv run python docs/camera_layout.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pfflake.camera import QUABO_ROTATION_DEG, Camera, module_from_quabos


def main(out: Path = Path(__file__).with_name("camera_layout.png")) -> Path:
    cam = Camera.for_product("img16")
    s = cam.pixel_size_deg
    x, y = cam.pix_x_deg.reshape(32, 32), cam.pix_y_deg.reshape(32, 32)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.4))
    ax = axes[0]
    colours = {0: "#8dd3c7", 1: "#ffffb3", 2: "#bebada", 3: "#fb8072"}
    quabo = cam.quabo_of_pixel
    for r in range(32):
        for c in range(32):
            ax.add_patch(plt.Rectangle((x[r, c] - s / 2, y[r, c] - s / 2), s, s,
                                       facecolor=colours[int(quabo[r, c])], edgecolor="white",
                                       linewidth=0.4))
    # the first packet pixel (0, 0) and the packet's row direction of each quabo
    for k in range(4):
        qk = np.zeros((4, 16, 16), dtype=int)
        qk[k, 0, 0], qk[k, 0, 1] = 1, 2
        mk = module_from_quabos(qk)
        (r0, c0), (r1, c1) = np.argwhere(mk == 1)[0], np.argwhere(mk == 2)[0]
        ax.plot(x[r0, c0], y[r0, c0], "ko", ms=4)
        ax.annotate("", xy=(x[r1, c1] + 4 * (x[r1, c1] - x[r0, c0]),
                            y[r1, c1] + 4 * (y[r1, c1] - y[r0, c0])),
                    xytext=(x[r0, c0], y[r0, c0]), arrowprops={"arrowstyle": "->", "lw": 1.2})
        rows, cols = np.nonzero(quabo == k)
        ax.text(x[rows, cols].mean(), y[rows, cols].mean(),
                f"quabo {k}\nrotated {QUABO_ROTATION_DEG[k]} deg CW", ha="center",
                va="center", fontsize=10, weight="bold")
    for r, c in ((0, 0), (0, 31), (31, 0), (31, 31)):
        ax.text(x[r, c], y[r, c], str(r * 32 + c), ha="center", va="center", fontsize=6)
    ax.set_xlim(x.min() - s, x.max() + s)
    ax.set_ylim(y.max() + s, y.min() - s)  # row 0 at the top, as the image is stored
    ax.set_aspect("equal")
    ax.set_xlabel("pix_x_deg (grows with column)")
    ax.set_ylabel("pix_y_deg (grows with row; row 0 at top)")
    ax.set_title(f"img16 / img8 / ph1024 module: 32x32, {s:.4f} deg/pixel\n"
                 "dot: quabo packet pixel (0, 0); arrow: its packet row direction; "
                 "numbers: flat index", fontsize=9)
    ax = axes[1]
    raw = Camera.for_product("ph1024")
    labels = np.array([[0, 1], [3, 2]])
    stored = np.repeat(np.repeat(labels, 16, 0), 16, 1)
    shown = np.where(stored == 1, 9, stored)
    shown = np.where(stored == 3, 1, shown)
    shown = np.where(shown == 9, 3, shown)  # the swap the DAQ makes
    for r in range(32):
        for c in range(32):
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1,
                                       facecolor=colours[int(shown[r, c])], edgecolor="white",
                                       linewidth=0.4))
    for (r, c), k in {(8, 8): 0, (8, 24): 3, (24, 24): 2, (24, 8): 1}.items():
        ax.text(c, r, f"holds quabo {k}'s pixels", ha="center", va="center", fontsize=9)
    ax.set_xlim(-1, 32)
    ax.set_ylim(32, -1)
    ax.set_aspect("equal")
    ax.set_xlabel("stored column")
    ax.set_ylabel("stored row")
    ax.set_title("ph1024 as the DAQ stores it: top-right and bottom-left blocks swapped\n"
                 f"Camera.for_product('ph1024') (fix_quadrants={raw.fix_quadrants}) gives each "
                 "stored pixel its true position", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(main())
