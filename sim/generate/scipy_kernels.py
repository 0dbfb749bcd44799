"""scipy's normal CDF and its inverse as functions compiled numba kernels can call.

``ndtr(x, 0)`` and ``ndtri(p, 0)`` are the double functions behind ``scipy.special.ndtr``
and ``scipy.special.ndtri`` (``scipy.special.cython_special``'s, C signature
``double (double, int skip_dispatch)``), so a kernel computes the doubles scipy's ufuncs
compute (checked equal on 4 million values, tests/sim/generate/test_covariates.py). They are
named symbols, not ctypes pointers, so a kernel's machine code can be cached
(``cache=True``): this module registers them when imported, before any kernel that calls
them is loaded.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from numba import types
from numba.extending import get_cython_function_address

_SIGNATURE = b"double (double, int __pyx_skip_dispatch)"


def _address(capsule: str) -> int:
    from scipy.special import cython_special

    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    signature = name(cython_special.__pyx_capi__[capsule])
    if signature != _SIGNATURE:
        raise ImportError(f"scipy.special.cython_special's {capsule} has the signature "
                          f"{signature!r}, not double (double, int): update "
                          "sim.generate.scipy_kernels")
    return get_cython_function_address("scipy.special.cython_special", capsule)


llvm.add_symbol("psmsim_scipy_ndtr", _address("__pyx_fuse_1ndtr"))
llvm.add_symbol("psmsim_scipy_ndtri", _address("ndtri"))

#: scipy's double ``ndtr``: ``ndtr(x, 0)`` = Phi(x).
ndtr = types.ExternalFunction("psmsim_scipy_ndtr", types.float64(types.float64, types.intc))
#: scipy's ``ndtri``: ``ndtri(p, 0)`` = Phi^{-1}(p).
ndtri = types.ExternalFunction("psmsim_scipy_ndtri", types.float64(types.float64, types.intc))
