# SPDX-License-Identifier: BSD-2-Clause
# pm_set_warnings(target): the project's warning set, -Werror when PM_WERROR is on (CI).
function(pm_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow)
  if(PM_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
