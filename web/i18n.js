// Every string the two pages show, in English and Chinese, and the language choice.
// Elements carry data-i18n="key" (text) or data-i18n-ph="key" (placeholder); code calls t().

export const STRINGS = {
  en: {
    langName: 'English',
    brand: 'Flash sale',
    remaining: 'Remaining',
    of: 'of',
    startsIn: 'Starts in',
    endsIn: 'Ends in',
    startsAt: 'Starts at {time}',
    'state.scheduled': 'Coming soon',
    'state.live': 'On sale',
    'state.sold_out': 'Sold out',
    'state.ended': 'Ended',
    'buy.scheduled': 'Not started yet',
    'buy.live': 'Buy now',
    'buy.busy': 'Buying…',
    'buy.retry': 'Try again',
    'buy.held': 'Already bought',
    'buy.sold_out': 'Sold out',
    'buy.ended': 'Sale ended',
    'res.confirmed': 'Got it! Your order is confirmed.',
    'res.already': 'You already bought this item.',
    'res.sold_out': 'Sold out: every unit has been sold.',
    'res.ended': 'The sale has ended.',
    'res.not_started': 'The sale has not started yet.',
    'res.retry': 'The server is busy. Try again: a retry can never buy twice.',
    'res.rate_limited': 'Too many requests. Wait a moment, then try again.',
    'res.not_found': 'This sale does not exist.',
    'res.error': 'Something went wrong: {msg}',
    orderId: 'Order',
    empty: 'No sale is open right now. This page checks again every few seconds.',
    buyerId: 'Your buyer id',
    buyerHint: 'Kept in this browser. Use the same id on another device to see your order.',
    newId: 'New id',
    'conn.connecting': 'connecting…',
    'conn.sse': 'live',
    'conn.reconnecting': 'reconnecting…',
    'conn.polling': 'refreshing every 2 s',
    // dashboard
    dashTitle: 'Sales dashboard',
    createTitle: 'New sale',
    'f.id': 'Id',
    'f.name': 'Product name',
    'f.stock': 'Stock',
    'f.starts_at': 'Starts at',
    'f.ends_at': 'Ends at',
    'f.per_user_limit': 'Limit per buyer',
    create: 'Create sale',
    created: 'Sale {id} created.',
    exists: 'A sale with id {id} already exists.',
    badField: '{field}: {msg}',
    tokenNeeded: 'This server needs an admin token to create sales.',
    tokenRejected: 'The admin token was rejected. Enter it again.',
    tokenLabel: 'Admin token',
    tokenSave: 'Use token',
    tokenForget: 'Forget token',
    salesTitle: 'Sales',
    noSales: 'No sales yet.',
    'col.id': 'Id',
    'col.name': 'Name',
    'col.state': 'State',
    'col.sold': 'Sold / stock',
    'col.starts': 'Starts',
    'col.ends': 'Ends',
    openPage: 'page',
    liveTitle: 'Live: {name}',
    pickSale: 'Select a sale to watch it.',
    'm.qlen': 'Waiting in queue',
    'm.qadmitted': 'Admitted',
    'm.qrate': 'Admissions / s',
    'm.qrateSet': 'set: {n} / s',
    'm.qwait': 'Wait at the back',
    'q.title': 'Waiting room',
    'q.intro': 'This sale admits buyers through a waiting room. Join it, keep this page open, and buy when it is your turn.',
    'q.join': 'Join the queue',
    'q.joining': 'Joining…',
    'q.solving': 'Checking your browser…',
    'q.position': 'Your place',
    'q.ahead': 'Ahead of you',
    'q.eta': 'Estimated wait',
    'q.undrawn': 'drawn at the start',
    'q.state.pre_queue': 'In the queue: places are set when the sale starts.',
    'q.state.waiting': 'Waiting for your turn…',
    'q.state.admitted': 'It is your turn: buy before {time}.',
    'q.state.sold_out': 'Sold out for now: the queue waits in case units come back.',
    'q.state.paused': 'The sale is paused: the queue waits.',
    'q.state.ended': 'The sale has ended.',
    'q.state.expired': 'Your turn passed: you are back in the queue.',
    'q.error': 'The waiting room did not answer: {msg}',
    'buy.queue': 'Wait for your turn',
    'res.not_admitted': 'Your admission is not valid (any more): wait for your turn in the queue.',
    'm.sold': 'Sold',
    'm.remaining': 'Remaining',
    'm.pps': 'Purchases / s',
    'm.rej': 'Rejections / s',
    'm.p99': 'HTTP latency p99 (10 s)',
    'm.batch': 'Ledger batch size (mean)',
    'm.commit': 'Commit latency mean / p99',
    metricsDown: 'Metrics unavailable: {msg}',
    metricsToken: 'This server needs a token to show its metrics.',
    lastMinutes: 'last {n} min',
    'm.front': 'Front door refusals / s',
    'front.rate_limited': 'rate-limited',
    'front.denied': 'denied',
    'front.tokens': 'bad tokens',
  },
  zh: {
    langName: '中文',
    brand: '限时秒杀',
    remaining: '剩余',
    of: '/',
    startsIn: '距开始',
    endsIn: '距结束',
    startsAt: '{time} 开始',
    'state.scheduled': '即将开始',
    'state.live': '抢购中',
    'state.sold_out': '已售罄',
    'state.ended': '已结束',
    'buy.scheduled': '尚未开始',
    'buy.live': '立即抢购',
    'buy.busy': '抢购中…',
    'buy.retry': '重试',
    'buy.held': '已抢到',
    'buy.sold_out': '已售罄',
    'buy.ended': '活动已结束',
    'res.confirmed': '抢购成功！订单已确认。',
    'res.already': '您已经买过这件商品了。',
    'res.sold_out': '很遗憾，商品已售罄。',
    'res.ended': '活动已结束。',
    'res.not_started': '活动尚未开始。',
    'res.retry': '服务器繁忙，请重试：重试不会重复下单。',
    'res.rate_limited': '请求过于频繁，请稍后再试。',
    'res.not_found': '该活动不存在。',
    'res.error': '出错了：{msg}',
    orderId: '订单号',
    empty: '当前没有进行中的活动，本页会每隔几秒重新查看。',
    buyerId: '您的买家编号',
    buyerHint: '保存在本浏览器中。在其他设备上使用同一编号即可查看订单。',
    newId: '换一个',
    'conn.connecting': '连接中…',
    'conn.sse': '实时',
    'conn.reconnecting': '正在重连…',
    'conn.polling': '每 2 秒刷新',
    dashTitle: '秒杀控制台',
    createTitle: '新建活动',
    'f.id': '编号',
    'f.name': '商品名称',
    'f.stock': '库存',
    'f.starts_at': '开始时间',
    'f.ends_at': '结束时间',
    'f.per_user_limit': '每人限购',
    create: '创建活动',
    created: '活动 {id} 已创建。',
    exists: '编号为 {id} 的活动已存在。',
    badField: '{field}：{msg}',
    tokenNeeded: '此服务器需要管理员令牌才能创建活动。',
    tokenRejected: '管理员令牌无效，请重新输入。',
    tokenLabel: '管理员令牌',
    tokenSave: '使用令牌',
    tokenForget: '清除令牌',
    salesTitle: '活动列表',
    noSales: '还没有活动。',
    'col.id': '编号',
    'col.name': '名称',
    'col.state': '状态',
    'col.sold': '已售 / 库存',
    'col.starts': '开始',
    'col.ends': '结束',
    openPage: '页面',
    liveTitle: '实时：{name}',
    pickSale: '选择一个活动以查看实时数据。',
    'm.qlen': '排队人数',
    'm.qadmitted': '已放行',
    'm.qrate': '放行 / 秒',
    'm.qrateSet': '设定：{n} / 秒',
    'm.qwait': '队尾预计等待',
    'q.title': '排队室',
    'q.intro': '本场秒杀需排队进入。加入排队，保持页面打开，轮到你时即可购买。',
    'q.join': '加入排队',
    'q.joining': '正在加入…',
    'q.solving': '正在验证浏览器…',
    'q.position': '你的位置',
    'q.ahead': '前面还有',
    'q.eta': '预计等待',
    'q.undrawn': '开始时抽签决定',
    'q.state.pre_queue': '已在队列中：开始时确定位置。',
    'q.state.waiting': '正在等待轮到你…',
    'q.state.admitted': '轮到你了：请在 {time} 前购买。',
    'q.state.sold_out': '暂时售罄：若有退回库存，队列会继续放行。',
    'q.state.paused': '活动已暂停：队列等待中。',
    'q.state.ended': '活动已结束。',
    'q.state.expired': '你的购买资格已过期：已重新排到队尾。',
    'q.error': '排队室没有响应：{msg}',
    'buy.queue': '请等待轮到你',
    'res.not_admitted': '你的购买资格无效或已过期：请在队列中等待轮到你。',
    'm.sold': '已售',
    'm.remaining': '剩余',
    'm.pps': '成交 / 秒',
    'm.rej': '拒绝 / 秒',
    'm.p99': 'HTTP 延迟 p99（10 秒）',
    'm.batch': '账本批量大小（均值）',
    'm.commit': '提交延迟 均值 / p99',
    metricsDown: '无法获取指标：{msg}',
    metricsToken: '此服务器需要令牌才能查看指标。',
    lastMinutes: '最近 {n} 分钟',
    'm.front': '入口拦截 / 秒',
    'front.rate_limited': '限流',
    'front.denied': '黑名单',
    'front.tokens': '无效令牌',
  },
};

const LANG_KEY = 'seckill.lang';

/** The language to show: the visitor's own choice, else the browser's languages. */
export function pickLang() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved && STRINGS[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const low = String(l).toLowerCase();
    if (low.startsWith('zh')) return 'zh';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

let current = 'en';

export function setLang(lang, remember) {
  current = STRINGS[lang] ? lang : 'en';
  if (remember) localStorage.setItem(LANG_KEY, current);
  document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-ph]')) el.placeholder = t(el.dataset.i18nPh);
  const toggle = document.getElementById('lang');
  if (toggle) toggle.textContent = STRINGS[other()].langName;
}

export function lang() {
  return current;
}

/** The locale for dates: Chinese when shown in Chinese, else the browser's own. */
export function locale() {
  return current === 'zh' ? 'zh-CN' : undefined;
}

export function other() {
  return current === 'zh' ? 'en' : 'zh';
}

/** The string for key in the current language, with {name} replaced from vars. */
export function t(key, vars) {
  const s = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return vars ? s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : s;
}
