#  One CTest per module self-test, named from proto/aip_selftests.h
#  (read whole: the lines end in '\', which would escape file(STRINGS)'s
#  list separators and leave one entry)
file(READ ${CMAKE_SOURCE_DIR}/proto/aip_selftests.h AIP_SELFTESTS_TEXT)
string(REGEX MATCHALL "\n *X\\([a-z_]+\\)" AIP_SELFTEST_LINES "${AIP_SELFTESTS_TEXT}")
foreach(line ${AIP_SELFTEST_LINES})
    string(REGEX REPLACE "^\n *X\\(([a-z_]+)\\)$" "\\1" module "${line}")
    add_test(NAME selftest_${module} COMMAND aip_selftest ${module})
    set_tests_properties(selftest_${module} PROPERTIES TIMEOUT 120)
endforeach()

#  System tests: the real binaries in a temporary AI_PEERS_HOME
#  Debian's python3 (with python3-zmq and python3-msgpack from apt)
find_program(PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
file(GLOB AIP_SYSTEM_TESTS ${CMAKE_SOURCE_DIR}/tests/test_*.py)
foreach(script ${AIP_SYSTEM_TESTS})
    get_filename_component(name ${script} NAME_WE)
    add_test(NAME ${name} COMMAND ${PYTHON3} ${script})
    set_tests_properties(${name} PROPERTIES TIMEOUT 600
        ENVIRONMENT "AIP_BIN_DIR=${CMAKE_BINARY_DIR};AIP_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endforeach()
