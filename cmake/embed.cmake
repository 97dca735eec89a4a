# SPDX-License-Identifier: BSD-2-Clause
# Turns a text file into a C string (pm_enhanced_status_codes_tsv) so the binary needs
# no data file at run time.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "extern \"C\" const char pm_enhanced_status_codes_tsv[] = {${bytes}0x00};\n")
