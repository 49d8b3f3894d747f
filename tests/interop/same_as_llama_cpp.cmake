# SPDX-License-Identifier: MIT
# Converts each fixture model to each type with qforge and compares the digest with llama.cpp's.
file(MAKE_DIRECTORY ${TMP})
set(failed "")
foreach(model tiny-llama tiny-qwen3 small-llama)
  foreach(type f16 bf16 f32 q8_0)
    set(out ${TMP}/${model}-${type}.gguf)
    execute_process(COMMAND ${QFORGE} gguf ${FIXTURES}/models/${model} -o ${out} --type ${type} --quiet
                    RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      list(APPEND failed "${model}-${type} (conversion failed)")
      continue()
    endif()
    execute_process(COMMAND ${PYTHON} ${HERE}/gguf_digest.py ${out} --against ${HERE}/reference/${model}-${type}.json
                    RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      list(APPEND failed "${model}-${type}")
    endif()
    file(REMOVE ${out})
  endforeach()
endforeach()
if(failed)
  message(FATAL_ERROR "differs from llama.cpp's converter: ${failed}")
endif()
