# FindCriterion.cmake — the one place the project looks for Criterion, the
# test framework of the suites under tests/ (Debian: libcriterion-dev).
# Defines Criterion_FOUND and the imported target Criterion::Criterion.
# -DCMAKE_DISABLE_FIND_PACKAGE_Criterion=ON makes the project act as if it
# were absent.
find_path(Criterion_INCLUDE_DIR criterion/criterion.h)
find_library(Criterion_LIBRARY criterion)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Criterion REQUIRED_VARS Criterion_LIBRARY Criterion_INCLUDE_DIR)
if(Criterion_FOUND AND NOT TARGET Criterion::Criterion)
  add_library(Criterion::Criterion UNKNOWN IMPORTED)
  set_target_properties(Criterion::Criterion PROPERTIES
    IMPORTED_LOCATION "${Criterion_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${Criterion_INCLUDE_DIR}")
endif()
mark_as_advanced(Criterion_INCLUDE_DIR Criterion_LIBRARY)
