"""The FBP filters: frequency response |f| x window, windows from their textbook definitions.

f is in cycles per detector pixel, 0 .. 0.5 (Nyquist, the cut-off of every window).
Windows (Kak & Slaney, "Principles of Computerized Tomographic Imaging", ch. 3;
Shepp & Logan 1974):

- ramp (Ram-Lak): 1
- Shepp-Logan: sin(pi f / (2 f_c)) / (pi f / (2 f_c)) with f_c = 0.5
- Hann: 0.5 + 0.5 cos(pi f / f_c)
- Hamming: 0.54 + 0.46 cos(pi f / f_c)
"""

import math

import numpy as np
import pytest
import scipy.fft

from analysis.reconstruct import FILTERS, _filter_response, filter_projections

F_CUT = 0.5


def _window(name, f):
    f = np.asarray(f, dtype=np.float64)
    if name == "ramp":
        return np.ones_like(f)
    if name == "shepp-logan":
        a = math.pi * f / (2 * F_CUT)
        return np.where(f == 0, 1.0, np.sin(a) / np.where(f == 0, 1.0, a))
    if name == "hann":
        return 0.5 + 0.5 * np.cos(math.pi * f / F_CUT)
    if name == "hamming":
        return 0.54 + 0.46 * np.cos(math.pi * f / F_CUT)
    raise AssertionError(name)


def _ram_lak_kernel(n):
    """Band-limited ramp sampled on a periodic grid of n pixels (Kak & Slaney eq. 3.61):
    h(0) = 1/4, h(k) = -1/(pi k)^2 for odd k, 0 for even k."""
    h = np.zeros(n)
    for k in range(n):
        d = min(k, n - k)
        if d == 0:
            h[k] = 0.25
        elif d % 2 == 1:
            h[k] = -1.0 / (math.pi * d) ** 2
    return h


def test_every_filter_is_tested():
    assert set(FILTERS) == {"ramp", "shepp-logan", "hann", "hamming"}


@pytest.mark.parametrize("name, value", [("ramp", 1.0), ("shepp-logan", 2 / math.pi), ("hann", 0.0),
                                         ("hamming", 0.08)])
def test_textbook_window_at_nyquist(name, value):
    # anchors the windows written out above: their value at the cut-off, worked by hand
    assert _window(name, 0.5) == pytest.approx(value, abs=1e-12)
    assert _window(name, 0.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n_pad", [64, 72, 128, 250])
@pytest.mark.parametrize("name", ["ramp", "shepp-logan", "hann", "hamming"])
def test_filter_response_is_abs_f_times_window(name, n_pad):
    f = np.fft.rfftfreq(n_pad)
    got = _filter_response(n_pad, name)
    assert got.shape == f.shape
    # The band-limited ramp is |f| exactly only for the infinite kernel; the periodic one of
    # n_pad pixels drops the odd lags beyond n_pad / 2, at most
    # 2 sum_{odd k > n/2} 1/(pi k)^2 <= 2 / (pi^2 (n_pad - 2)) anywhere (0.0033 at 64 pixels).
    bound = 2.0 / (math.pi ** 2 * (n_pad - 2))
    assert np.abs(got - np.abs(f) * _window(name, f)).max() <= bound


@pytest.mark.parametrize("name", ["shepp-logan", "hann", "hamming"])
def test_windowed_response_over_ramp_response_is_the_window(name):
    n_pad = 128
    f = np.fft.rfftfreq(n_pad)
    ratio = _filter_response(n_pad, name) / _filter_response(n_pad, "ramp")
    np.testing.assert_allclose(ratio, _window(name, f), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_det", [32, 37])   # FFT lengths 64 and 75 (odd)
@pytest.mark.parametrize("name", ["ramp", "shepp-logan", "hann", "hamming"])
def test_filter_projections_convolves_each_row_with_the_windowed_ram_lak_kernel(name, n_det):
    """An impulse in each detector column of a zero-padded row comes out as the
    filter's kernel centred there: the full n_det x n_det matrix of the filter."""
    n_pad = scipy.fft.next_fast_len(max(64, 2 * n_det))
    impulses = np.eye(n_det, dtype=np.float32)[:, None, :]  # angle a: an impulse at column a
    out = filter_projections(impulses, filter=name, padding=False)
    f = np.fft.rfftfreq(n_pad)
    kernel = np.fft.irfft(np.fft.rfft(_ram_lak_kernel(n_pad)).real * _window(name, f), n=n_pad)
    lag = (np.arange(n_det)[None, :] - np.arange(n_det)[:, None]) % n_pad
    assert out.shape == (n_det, 1, n_det) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, :], kernel[lag], atol=2e-7)  # float32 FFT rounding
