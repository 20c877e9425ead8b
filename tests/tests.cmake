#  One CTest per module self-test, named from proto/aip_selftests.h
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_SOURCE_DIR}/proto/aip_selftests.h)
file(READ ${CMAKE_SOURCE_DIR}/proto/aip_selftests.h AIP_SELFTESTS_TEXT)
string(REGEX MATCHALL "X\\([a-z_]+\\)" AIP_SELFTEST_ENTRIES "${AIP_SELFTESTS_TEXT}")
foreach(entry ${AIP_SELFTEST_ENTRIES})
    string(REGEX REPLACE "X\\(([a-z_]+)\\)" "\\1" module "${entry}")
    add_test(NAME selftest_${module} COMMAND aip_selftest ${module})
    set_tests_properties(selftest_${module} PROPERTIES TIMEOUT 120)
endforeach()

#  System tests: the real binaries in a temporary AI_PEERS_HOME
#  Debian's python3 (with python3-zmq and python3-msgpack from apt)
find_program(AIP_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
file(GLOB AIP_SYSTEM_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.py)
foreach(script ${AIP_SYSTEM_TESTS})
    get_filename_component(name ${script} NAME_WE)
    add_test(NAME ${name} COMMAND ${AIP_PYTHON3} ${script})
    set_tests_properties(${name} PROPERTIES TIMEOUT 600
        ENVIRONMENT "AIP_BIN_DIR=${CMAKE_BINARY_DIR};AIP_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endforeach()

#  The relay worker's own tests, inside workerd (wrangler dev)
find_program(AIP_NPM npm)
if(AIP_NPM AND EXISTS ${CMAKE_SOURCE_DIR}/relayd/worker/test.sh)
    add_test(NAME relay_worker COMMAND ${CMAKE_SOURCE_DIR}/relayd/worker/test.sh)
    set_tests_properties(relay_worker PROPERTIES TIMEOUT 900 LABELS worker)
endif()
