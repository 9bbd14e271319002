// A module both halves import, as an app's shared code would: the server
// throws these classes, the client rehydrates them as these very classes.
import { defineFault } from '../../lib/fault.js'

export const OutOfStockError = defineFault<{ sku: string, left: number }>({ code: 'OUT_OF_STOCK', status: 409, title: 'Out of Stock' })
