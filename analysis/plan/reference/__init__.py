"""Reference analysis path: the analysis plan on one cohort with lifelines, statsmodels and scipy.

:func:`analyse_cohort_reference` runs the same plan as :func:`analysis.plan.analyse.analyse_cohorts`
(:mod:`analysis.plan.options`: PS model, caliper, matching, balance, Kaplan-Meier medians,
log-rank, Cox, ORR/DCR and AE tests, on the full and the matched cohort), for a batch of *one*
replicate, written patient by patient with the established libraries and without any code of
the batched engine. It is the oracle of the equivalence tests and the engine behind
``psmsim analyse --engine reference``. It returns a :class:`analysis.plan.analyse.PlanResult` with
the same fields and shapes (replicate dimension 1), so callers can swap engines.

Routes (each a straightforward per-cohort computation):

* PS: statsmodels ``GLM(Binomial)`` by IRLS (least-squares steps by pseudo-inverse, so a
  rank-deficient design gives the minimum-norm solution); (quasi-)separation by the exact
  linear-programming criterion of Albert & Anderson (1984) (scipy ``linprog``).
* Caliper: ``caliper * sd(distance)`` (n - 1 denominator, both arms pooled) or absolute.
* Matching: MatchIt's nearest-neighbour walk over the sorted distances, and SPSS FUZZY's
  random / closest control within the tolerance, one treated patient at a time. The random
  choices of the SPSS matchers cannot reproduce the batched engine's draws: pass ``pairs``
  (e.g. the batched engine's matching) to analyse given matched sets instead.
* Kaplan-Meier: lifelines ``KaplanMeierFitter`` (S(t), numbers at risk and events); Greenwood
  sums, the median (first time S(t) <= 0.5, or R's midpoint rule where S(t) = 0.5 on an
  interval), Brookmeyer-Crowley band inversion and the SPSS-style symmetric interval written
  out here from their definitions.
* Log-rank: lifelines ``logrank_test``; the pair-stratified test and the variance (for the
  status) summed stratum by stratum here.
* Cox: Breslow ties by statsmodels ``PHReg(ties="breslow")`` (rows repeated by their integer
  weights), Efron ties by lifelines ``CoxPHFitter`` (case weights, tight convergence); robust
  SE clustered on pairs: for Breslow from PHReg's score residuals, for Efron from the
  Efron-consistent score residuals of R ``residuals.coxph`` written out here (lifelines'
  residuals ignore ties). Sandwich ``I^-2 sum_g (sum_{i in g} w_i L_i)^2`` (Lin & Wei 1989),
  no small-sample factor, as R ``coxph(..., cluster=)``.
* ORR/DCR, AEs and categorical baseline rows: scipy ``chi2_contingency`` (with and without
  Yates' correction) and ``fisher_exact``, picked by the plan's rule; continuous baseline rows
  scipy ``ttest_ind`` / ``mannwhitneyu`` (asymptotic, no continuity correction).

The stages live in :mod:`.propensity` (PS model and matching), :mod:`.survival` (Kaplan-Meier
medians, log-rank, Cox), :mod:`.comparisons` (baseline tests, balance, response and AE tests)
and :mod:`.engine` (the plan). statsmodels is needed only when the engine is called (it
raises ``ImportError`` naming it otherwise).

References
----------
Albert A, Anderson JA (1984). Biometrika 71:1-10. Austin PC (2011). Pharm Stat 10:150-161.
Brookmeyer R, Crowley J (1982). Biometrics 38:29-41. Collett D (1994). Modelling Survival Data
in Medical Research, section 2.4. Lin DY, Wei LJ (1989). J Am Stat Assoc 84:1074-1078.
Therneau TM, Grambsch PM (2000). Modeling Survival Data, Springer (score residuals).
"""

from analysis.plan.reference.engine import analyse_cohort_reference

__all__ = ["analyse_cohort_reference"]
