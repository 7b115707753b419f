# ctest script: install the build tree to a temporary prefix, then configure,
# build and run tests/consumer against it, by CMake package and by pkg-config;
# the installed `deco` must run its built-in model (greedy: llama2.c's ids,
# from the data folder: $DECO_DATA_DIR, else -DDECO_DATA_DIR) with no data
# folder of its own.
file(REMOVE_RECURSE ${DECO_WORK_DIR})
set(prefix ${DECO_WORK_DIR}/prefix)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${DECO_BUILD_DIR} --prefix ${prefix}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()
if(DEFINED ENV{DECO_DATA_DIR} AND NOT "$ENV{DECO_DATA_DIR}" STREQUAL "")
  set(DECO_DATA_DIR "$ENV{DECO_DATA_DIR}")
endif()
set(DECO_GOLDEN "${DECO_DATA_DIR}/fixtures/stories260K/greedy_bos_256.ids")
if(NOT EXISTS "${DECO_GOLDEN}")
  message(FATAL_ERROR "missing data file ${DECO_GOLDEN}")
endif()
execute_process(COMMAND ${prefix}/bin/deco generate --temperature 0 --print-ids --backend cpu
                WORKING_DIRECTORY ${DECO_WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE ids ERROR_VARIABLE err)
file(READ "${DECO_GOLDEN}" want)
string(STRIP "${want}" want)
if(NOT rc EQUAL 0 OR NOT ids STREQUAL "${want}\n")
  message(FATAL_ERROR "installed deco: exit ${rc}, stdout '${ids}', stderr '${err}'; expected '${want}'")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${DECO_CONSUMER_SRC} -B ${DECO_WORK_DIR}/build
                        -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the consumer failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${DECO_WORK_DIR}/build RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the consumer failed: ${rc}")
endif()
foreach(exe consumer consumer_static)
  execute_process(COMMAND ${DECO_WORK_DIR}/build/${exe} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${exe} failed: ${rc}")
  endif()
  message(STATUS "${exe}: ${out}")
endforeach()
# pkg-config: compile and link the same program with the flags it gives.
find_program(PKG_CONFIG pkg-config)
if(PKG_CONFIG)
  file(GLOB pcdir ${prefix}/lib*/pkgconfig)
  set(ENV{PKG_CONFIG_PATH} "${pcdir}")
  execute_process(COMMAND ${PKG_CONFIG} --define-prefix --cflags --libs deco OUTPUT_VARIABLE flags RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config deco failed")
  endif()
  separate_arguments(flags UNIX_COMMAND "${flags}")
  execute_process(COMMAND cc ${DECO_CONSUMER_SRC}/main.c ${flags} -Wl,-rpath,${pcdir}/.. -o ${DECO_WORK_DIR}/pc_consumer
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building with pkg-config flags failed")
  endif()
  execute_process(COMMAND ${DECO_WORK_DIR}/pc_consumer RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config consumer failed: ${rc}")
  endif()
endif()
