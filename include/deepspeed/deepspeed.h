#pragma once
/// \file
/// deepspeed.cpp's public API, the C++ counterpart of `import deepspeed`:
///
///   CLI::App app{"CIFAR"};
///   auto ds_args = deepspeed::add_config_arguments(app);
///   deepspeed::parse_arguments(app, argc, argv);
///   auto [engine, optimizer, trainloader, scheduler] =
///       deepspeed::initialize(ds_args, net, net->parameters(), trainset);
///   for (auto& batch : *trainloader) {
///     auto loss = criterion(engine(batch.data.to(engine.device())), batch.target.to(engine.device()));
///     engine.backward(loss);
///     engine.step();
///   }

#include "deepspeed/arguments.h"
#include "deepspeed/comm/communicator.h"
#include "deepspeed/config/config.h"
#include "deepspeed/data/dataloader.h"
#include "deepspeed/data/dataset.h"
#include "deepspeed/engine/activation_checkpointing.h"
#include "deepspeed/engine/engine.h"
#include "deepspeed/engine/gathered_parameters.h"
#include "deepspeed/monitor/monitor.h"
#include "deepspeed/optim/lr_schedules.h"
#include "deepspeed/optim/optimizer.h"
#include "deepspeed/profiling/flops_profiler.h"
#include "deepspeed/util/error.h"
#include "deepspeed/zero/init.h"
#include "deepspeed/zero/unit.h"

#include "deepspeed/initialize.h"
