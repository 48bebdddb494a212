// Placeholder: DeepSpeed's learning-rate schedules land here (see include/deepspeed/optim/lr_schedules.h).
