
(
readReadFile*
value
/etc/passwd

pyPyFunc