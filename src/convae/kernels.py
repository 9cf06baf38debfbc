"""Classic 3x3 (and 5x5) image kernels, as float arrays, for chapters that filter images by hand.

Written the way deep learning applies them: as *cross-correlation* weights, the kernel laid over
the window as it is, not flipped (chapter 02 shows the difference).
"""
import numpy as np

IDENTITY = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=float)
BOX_BLUR = np.full((3, 3), 1 / 9)
GAUSSIAN_BLUR = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=float) / 16
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float)
#: responds to a vertical edge that is dark on the left and bright on the right
VERTICAL_EDGE = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=float)
#: responds to a horizontal edge that is dark above and bright below
HORIZONTAL_EDGE = VERTICAL_EDGE.T.copy()
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
SOBEL_Y = SOBEL_X.T.copy()
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=float)

CLASSIC = {
    "identity": IDENTITY, "box blur": BOX_BLUR, "Gaussian blur": GAUSSIAN_BLUR, "sharpen": SHARPEN,
    "vertical edge": VERTICAL_EDGE, "horizontal edge": HORIZONTAL_EDGE, "Sobel x": SOBEL_X,
    "Sobel y": SOBEL_Y, "Laplacian": LAPLACIAN,
}
