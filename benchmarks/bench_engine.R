# The `recommended` analysis plan of psmsim, one cohort at a time, as an R user would write it:
# glm logistic PS model -> greedy nearest-neighbour 1:1 matching on the logit without
# replacement, caliper 0.2 x SD(logit), treated in decreasing order of the PS (MatchIt's
# "largest"; written out here because Debian's MatchIt 4.5.1 ignores calipers) -> per cohort
# (full, matched) and endpoint (PFS, OS): Kaplan-Meier medians with log-transformed CIs
# (survfit conf.type = "log"), log-rank (survdiff), Cox (coxph, Efron ties, robust SE clustered
# on pairs; on patients in the full cohort), standardised differences of the PS covariates
# (pooled SD of the full cohort; p (1 - p) for 0/1 covariates) and ORR by Fisher's test when an expected count is < 5, else
# Pearson's chi-squared without continuity correction.
#
# Usage: Rscript benchmarks/bench_engine.R COHORTS.csv PS_COVARIATES OUT.csv
#   COHORTS.csv: psmsim's cohort CSV columns plus `replicate` (0-based); PS_COVARIATES:
#   comma-separated names. OUT.csv: one row per replicate. Prints the analysis seconds.
suppressPackageStartupMessages(library(survival))

args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
covariates <- strsplit(args[2], ",")[[1]]
formula_ps <- reformulate(covariates, response = "treated")

greedy_match <- function(logit, treated, caliper) {
  control_of <- rep(NA_integer_, length(logit))
  free <- !treated
  for (i in which(treated)[order(-logit[treated])]) {
    candidates <- which(free)
    if (length(candidates) == 0) break
    gaps <- abs(logit[candidates] - logit[i])
    best <- which.min(gaps)
    if (gaps[best] <= caliper) {
      control_of[i] <- candidates[best]
      free[candidates[best]] <- FALSE
    }
  }
  control_of
}

endpoint <- function(time, event, treated, cluster) {
  fit <- survfit(Surv(time, event) ~ treated, conf.type = "log")
  q <- quantile(fit, probs = 0.5)
  cox <- coxph(Surv(time, event) ~ treated + cluster(cluster), ties = "efron")
  lr <- survdiff(Surv(time, event) ~ treated)
  c(log_hr = unname(coef(cox)), robust_se = unname(sqrt(diag(cox$var))),
    p_logrank = unname(pchisq(lr$chisq, 1, lower.tail = FALSE)),
    median_treated = unname(q$quantile["treated=TRUE", 1]), median_control = unname(q$quantile["treated=FALSE", 1]),
    median_treated_lower = unname(q$lower["treated=TRUE", 1]), median_treated_upper = unname(q$upper["treated=TRUE", 1]))
}

orr_p <- function(response, treated) {
  evaluable <- response != ""
  table2 <- table(factor(treated[evaluable], c(TRUE, FALSE)),
                  factor(response[evaluable] %in% c("CR", "PR"), c(TRUE, FALSE)))
  expected <- outer(rowSums(table2), colSums(table2)) / sum(table2)
  if (any(expected < 5)) fisher.test(table2)$p.value else suppressWarnings(chisq.test(table2, correct = FALSE)$p.value)
}

# Variances as MatchIt/cobalt: p (1 - p) for a 0/1 covariate, the n - 1 variance otherwise;
# both arms constant: 0 where the means agree, +-Inf where they differ.
smd <- function(x, treated, full_treated, full_x) {
  binary <- all(full_x %in% c(0, 1))
  v <- function(y) if (binary) mean(y) * (1 - mean(y)) else var(y)
  pooled <- sqrt((v(full_x[full_treated]) + v(full_x[!full_treated])) / 2)
  difference <- mean(x[treated]) - mean(x[!treated])
  if (pooled < sqrt(.Machine$double.eps)) return(if (abs(difference) <= sqrt(.Machine$double.eps)) 0 else sign(difference) * Inf)
  difference / pooled
}

analyse <- function(cohort) {
  treated <- cohort$treated == 1
  model <- glm(formula_ps, family = binomial(), data = cohort)
  logit <- unname(predict(model, type = "link"))
  control_of <- greedy_match(logit, treated, 0.2 * sd(logit))
  pairs <- which(!is.na(control_of))
  keep <- c(pairs, control_of[pairs])
  pair_id <- c(seq_along(pairs), seq_along(pairs))
  out <- c(n_pairs = length(pairs))
  for (name in c("pfs", "os")) {
    time <- cohort[[paste0(name, "_months")]]
    event <- cohort[[paste0(name, "_event")]]
    full <- endpoint(time, event, treated, seq_along(time))
    matched <- tryCatch(endpoint(time[keep], event[keep], treated[keep], pair_id),
                        error = function(e) full * NA)  # no pairs: the matched analysis fails
    names(full) <- paste("full", name, names(full), sep = "_")
    names(matched) <- paste("matched", name, names(matched), sep = "_")
    out <- c(out, full, matched)
  }
  smds <- sapply(covariates, function(v) smd(cohort[[v]][keep], treated[keep], treated, cohort[[v]]))
  out <- c(out, matched_max_abs_smd = max(abs(smds)),
           full_p_orr = orr_p(cohort$best_response, treated),
           matched_p_orr = orr_p(cohort$best_response[keep], treated[keep]))
  out
}

cohorts <- split(data, data$replicate)
start <- proc.time()[["elapsed"]]
rows <- lapply(cohorts, analyse)
seconds <- proc.time()[["elapsed"]] - start
result <- data.frame(replicate = as.integer(names(cohorts)), do.call(rbind, rows), check.names = FALSE)
write.csv(result, args[3], row.names = FALSE)
cat(sprintf("%.6f\n", seconds))
