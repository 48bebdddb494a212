# LibTorch-based layers.
file(GLOB DS_DATA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/data/*.cpp)
if(DS_DATA_SOURCES)
  ds_library(ds_data ${DS_DATA_SOURCES})
  target_link_libraries(ds_data PUBLIC ds_util torch)
endif()
