# Run R MatchIt method="nearest" on given distances and write the matched pairs.
#
# Usage: Rscript matchit_golden.R DATASETS.csv CONFIGS.csv PAIRS_OUT.csv
#   DATASETS.csv : dataset, unit (1-based, data order), distance, treated (0/1)
#   CONFIGS.csv  : config, ratio, replace (0/1), order, caliper (NA = none), std_caliper (0/1)
#   PAIRS_OUT.csv: dataset, config, treated_unit, slot, control_unit (NA = none),
#                  subclass (NA when replace or unmatched), caliper_dist (distance units, NA)
# Used by tests/analysis/test_matching.py (marker needs_r) and to make the golden file
# matchit_golden_pairs.csv. Distances are integer-valued on purpose: Debian's MatchIt 4.5.1
# build compares |d_t - d_c| through an integer abs(), which truncates fractional gaps (so
# fractional calipers are ignored and the left candidate always wins); with integer-valued
# distances the truncation is exact and the output is MatchIt's documented algorithm.
suppressPackageStartupMessages(library(MatchIt))
args <- commandArgs(trailingOnly = TRUE)
datasets <- read.csv(args[1])
configs <- read.csv(args[2], stringsAsFactors = FALSE)
out <- list()
for (ds in sort(unique(datasets$dataset))) {
  dat <- datasets[datasets$dataset == ds, ]
  dat <- dat[order(dat$unit), ]
  df <- data.frame(treat = dat$treated, x = dat$distance)
  rownames(df) <- as.character(dat$unit)
  for (i in seq_len(nrow(configs))) {
    cf <- configs[i, ]
    caliper <- if (is.na(cf$caliper)) NULL else cf$caliper
    m <- tryCatch(
      suppressWarnings(matchit(treat ~ x, data = df, distance = dat$distance,
                               method = "nearest", ratio = cf$ratio,
                               replace = as.logical(cf$replace), m.order = cf$order,
                               caliper = caliper, std.caliper = as.logical(cf$std_caliper))),
      error = function(e) NULL)  # MatchIt stops with "No matches were found."
    if (is.null(m)) {
      tu <- dat$unit[dat$treated == 1]
      mm <- matrix(NA_character_, nrow = length(tu), ncol = cf$ratio,
                   dimnames = list(as.character(tu), NULL))
      m <- list(match.matrix = mm, subclass = NULL)
    }
    mm <- m$match.matrix
    cal_dist <- NA
    if (!is.null(caliper)) {
      cal_dist <- if (as.logical(cf$std_caliper)) caliper * sd(dat$distance) else caliper
    }
    sub <- if (is.null(m$subclass)) rep(NA, nrow(df)) else as.integer(m$subclass)
    names(sub) <- rownames(df)
    for (slot in seq_len(ncol(mm))) {
      tu <- as.integer(rownames(mm))
      cu <- suppressWarnings(as.integer(mm[, slot]))
      out[[length(out) + 1]] <- data.frame(
        dataset = ds, config = cf$config, treated_unit = tu, slot = slot,
        control_unit = cu, subclass = sub[rownames(mm)], caliper_dist = cal_dist)
    }
  }
}
res <- do.call(rbind, out)
write.csv(res, args[3], row.names = FALSE, na = "NA")
cat(sprintf("R %s.%s, MatchIt %s\n", R.version$major, R.version$minor, packageVersion("MatchIt")))
