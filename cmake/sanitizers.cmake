# SPDX-License-Identifier: BSD-2-Clause
# PM_SANITIZE="address;undefined" or "thread": applied to every target of the build.
if(PM_SANITIZE)
  list(JOIN PM_SANITIZE "," pm_sanitizers)
  add_compile_options(-fsanitize=${pm_sanitizers} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${pm_sanitizers})
endif()
