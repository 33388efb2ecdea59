J



ReadFile8
(
readReadFile*
value
/etc/passwd

pyPyFunc