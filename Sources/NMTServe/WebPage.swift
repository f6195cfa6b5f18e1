/// The page at `/`: a source box, the language pair, the translation as you type (debounced), n-best
/// on request and the attention heatmap. Everything is in this one response: it loads nothing else.
enum WebPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SwiftNMT</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  .row { display: flex; gap: 1rem; }
  .row > div { flex: 1; }
  textarea, #translation { width: 100%; min-height: 8rem; font-size: 1.1rem; box-sizing: border-box; padding: .5rem; }
  #translation { border: 1px solid #ccc; background: #f8f8f8; white-space: pre-wrap; }
  #status { color: #777; font-size: .9rem; min-height: 1.2rem; }
  #nbest li { margin: .2rem 0; }
  .score { color: #777; font-size: .85rem; }
  #heatmap td { width: 1.6rem; height: 1.2rem; }
  #heatmap th { font-weight: normal; font-size: .8rem; }
  #heatmap th.source { writing-mode: vertical-rl; transform: rotate(180deg); }
</style>
</head>
<body>
<h1>SwiftNMT</h1>
<p><label>Languages <select id="pair"></select></label>
   <label><input type="checkbox" id="showNBest"> n-best</label>
   <label><input type="checkbox" id="showHeatmap"> attention</label></p>
<div class="row">
  <div><textarea id="source" placeholder="Type a sentence" autofocus></textarea></div>
  <div><div id="translation" aria-live="polite"></div></div>
</div>
<div id="status"></div>
<ol id="nbest"></ol>
<table id="heatmap"></table>
<script>
const pair = document.getElementById("pair"), source = document.getElementById("source");
const output = document.getElementById("translation"), status = document.getElementById("status");
let timer = null, sequence = 0;
fetch("/languages").then(r => r.json()).then(languages => {
  for (const language of languages) for (const target of language.targets) {
    const option = document.createElement("option");
    option.value = language.code + "-" + target;
    option.textContent = language.name + " → " + target;
    pair.appendChild(option);
  }
});
function schedule() { clearTimeout(timer); timer = setTimeout(translate, 300); }
async function translate() {
  const text = source.value.split("\n")[0].trim();
  const mine = ++sequence;
  if (!text) { output.textContent = ""; document.getElementById("nbest").innerHTML = ""; document.getElementById("heatmap").innerHTML = ""; return; }
  const [from, to] = pair.value.split("-");
  const nBest = document.getElementById("showNBest").checked, heatmap = document.getElementById("showHeatmap").checked;
  status.textContent = "translating…";
  const started = performance.now();
  const response = await fetch("/v1/translate", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text: text, source: from, target: to, n_best: nBest ? 5 : 1, alignments: heatmap }) });
  const answer = await response.json();
  if (mine !== sequence) return;
  if (!response.ok) { status.textContent = answer.error; return; }
  const translation = answer.translations[0];
  output.textContent = translation.text;
  status.textContent = "translated in " + Math.round(performance.now() - started) + " ms";
  const list = document.getElementById("nbest");
  list.innerHTML = "";
  if (nBest) for (const h of translation.hypotheses) {
    const item = document.createElement("li");
    item.textContent = h.text + " ";
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = h.score.toFixed(4);
    item.appendChild(score);
    list.appendChild(item);
  }
  drawHeatmap(heatmap ? translation : null);
}
function drawHeatmap(translation) {
  const table = document.getElementById("heatmap");
  table.innerHTML = "";
  if (!translation || !translation.hypotheses.length) return;
  const best = translation.hypotheses[0];
  const header = table.insertRow();
  header.appendChild(document.createElement("th"));
  for (const piece of translation.source_pieces) {
    const th = document.createElement("th"); th.className = "source"; th.textContent = piece; header.appendChild(th);
  }
  best.attention.forEach((weights, t) => {
    const row = table.insertRow();
    const th = document.createElement("th"); th.textContent = best.target_pieces[t]; row.appendChild(th);
    for (const w of weights) {
      const cell = row.insertCell();
      cell.style.background = "rgba(30, 90, 200, " + w.toFixed(3) + ")";
      cell.title = w.toFixed(3);
    }
  });
}
source.addEventListener("input", schedule);
pair.addEventListener("change", translate);
document.getElementById("showNBest").addEventListener("change", translate);
document.getElementById("showHeatmap").addEventListener("change", translate);
</script>
</body>
</html>
"""#
}
