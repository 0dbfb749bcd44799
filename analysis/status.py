"""Status codes recorded per replicate and analysis: failures are data, never exceptions.

A batched function that cannot produce an estimate for a replicate returns NaN there and one
of these codes; the runner stores the code in the results' ``status`` variable and the
summaries report the rate of each. Codes are small integers so they fit an int8 array.
"""

OK = 0
#: Logistic PS model shows (quasi-)complete separation (fitted probabilities 0 or 1).
SEPARATION = 1
#: PS Newton iterations did not converge (without separation).
PS_NOT_CONVERGED = 2
#: Matching paired nobody (no control within the caliper/tolerance of any treated patient).
NO_MATCHES = 3
#: An arm of the analysed cohort is empty.
EMPTY_ARM = 4
#: No events in the analysed cohort, or none in one arm (Cox likelihood monotone: no finite MLE).
NO_EVENTS = 5
#: Cox Newton iterations did not converge or the information was singular.
NOT_CONVERGED = 6
#: A statistic is undefined for this replicate for another stated reason (e.g. a median not
#: reached gives NaN median with OK status; this code is for whole-analysis failures only).
UNDEFINED = 7

#: Name of every code, for the results' attributes and the summaries.
STATUS_NAMES = {
    OK: "ok",
    SEPARATION: "separation",
    PS_NOT_CONVERGED: "ps_not_converged",
    NO_MATCHES: "no_matches",
    EMPTY_ARM: "empty_arm",
    NO_EVENTS: "no_events",
    NOT_CONVERGED: "not_converged",
    UNDEFINED: "undefined",
}
