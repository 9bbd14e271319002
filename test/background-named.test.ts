import t from 'tap'
import { guardProcess } from './helpers/guard.js'
import { namedTaskContract } from './helpers/background-contract.js'

guardProcess(t)

// The named-task contract in process: no Redis. test/background-bullmq.test.ts runs the same on BullMQ.
namedTaskContract(t, { name: 'in-process', options: () => ({}) })
