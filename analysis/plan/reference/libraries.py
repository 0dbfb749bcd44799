"""The optional libraries the reference engine calls, imported when first needed."""

from __future__ import annotations


def statsmodels_classes():
    """statsmodels' ``GLM``, ``Binomial`` family and ``PHReg``; ImportError naming the package
    when it is not installed."""
    try:
        from statsmodels.duration.hazard_regression import PHReg
        from statsmodels.genmod import families
        from statsmodels.genmod.generalized_linear_model import GLM
    except ImportError as error:
        raise ImportError("the reference engine needs statsmodels: pip install statsmodels") from error
    return GLM, families.Binomial, PHReg
