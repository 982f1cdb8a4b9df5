# Fails if any C++ source differs from .clang-format. Run `make format` to fix.
file(GLOB_RECURSE files "${SOURCE_DIR}/server/*.cpp" "${SOURCE_DIR}/server/*.hpp" "${SOURCE_DIR}/bench/*.cpp" "${SOURCE_DIR}/bench/*.hpp")
execute_process(COMMAND clang-format --dry-run -Werror ${files} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "clang-format check failed; run `make format`")
endif()
