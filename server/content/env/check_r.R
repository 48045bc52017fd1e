# dais: which R packages of a bundle are missing from the libraries?
# R -e <this> --args FILE, FILE holding "name<TAB>version<TAB>repository" lines.
# Prints "MISSING name" and "VERSION name installed wanted" (installed older).
args <- commandArgs(trailingOnly = TRUE)
want <- utils::read.delim(args[1], header = FALSE, sep = "\t", colClasses = "character",
                          col.names = c("name", "version", "repo"), na.strings = character(),
                          quote = "")
ip <- utils::installed.packages()
for (i in seq_len(nrow(want))) {
  n <- want$name[i]
  v <- want$version[i]
  if (!(n %in% rownames(ip))) {
    cat("MISSING", n, "\n")
    next
  }
  have <- ip[which(rownames(ip) == n)[1], "Version"]
  ok <- tryCatch(package_version(have) >= package_version(v), error = function(e) TRUE)
  if (nzchar(v) && !ok) cat("VERSION", n, have, v, "\n")
}
