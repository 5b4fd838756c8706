# Fails when an #include runs upward in the layering (README.md, "Layout"):
#   common -> kernels -> model -> cache -> policy -> generate -> golden -> train -> {sft, rl, eval} -> apps
# A folder may include its own headers and those of any folder to its left; sft, rl and eval, on
# one level, may not include each other. Run by ctest as the test `layering`:
#   cmake -DROOT=<source dir> -P tests/check_layers.cmake
set(layers common kernels model cache policy generate golden train "sft|rl|eval" apps)

set(rank 0)
foreach(level ${layers})
  string(REPLACE "|" ";" folders "${level}")
  foreach(folder ${folders})
    set(rank_of_${folder} ${rank})
  endforeach()
  math(EXPR rank "${rank} + 1")
endforeach()

set(violations "")
foreach(level ${layers})
  string(REPLACE "|" ";" folders "${level}")
  foreach(folder ${folders})
    file(GLOB_RECURSE sources RELATIVE ${ROOT} ${ROOT}/${folder}/*.h ${ROOT}/${folder}/*.cpp
         ${ROOT}/${folder}/*.cuh ${ROOT}/${folder}/*.cu)
    foreach(source ${sources})
      file(STRINGS ${ROOT}/${source} includes REGEX "^[ \t]*#[ \t]*include[ \t]+\"[a-z_]+/")
      foreach(line ${includes})
        string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]+\"([a-z_]+)/.*" "\\1" target "${line}")
        if(target STREQUAL folder OR NOT DEFINED rank_of_${target})
          continue()
        endif()
        if(NOT rank_of_${target} LESS rank_of_${folder})
          string(STRIP "${line}" line)
          list(APPEND violations "${source}: ${line} (${folder} may not include ${target})")
        endif()
      endforeach()
    endforeach()
  endforeach()
endforeach()

if(violations)
  list(JOIN violations "\n  " message)
  message(FATAL_ERROR "includes that run upward in the layering:\n  ${message}")
endif()
list(LENGTH layers levels)
message(STATUS "layering: every include points down (${levels} levels)")
