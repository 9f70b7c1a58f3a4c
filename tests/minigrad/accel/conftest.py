"""`kernel_mode`: run a test once on the accelerated ops and once on the core ops
(the switch `minigrad.accel.kernel_mode`), restoring the mode after."""

import pytest

from minigrad import accel as kernels


@pytest.fixture(params=kernels.MODES)
def kernel_mode(request):
    with kernels.kernel_mode(request.param):
        yield request.param
