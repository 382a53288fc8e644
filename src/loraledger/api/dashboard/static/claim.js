// The Claim button of a contributor page: any EIP-1193 wallet (window.ethereum) sends
// RewardDistributor.claim(account, cumulativeAmount, proof) with the proof this node serves
// (claim.json), then the page shows the new figures. Hand-written, no library: the call data is
// ABI-encoded below. Text only goes into the page through textContent.
(function () {
  "use strict";

  // keccak256("claim(address,uint256,bytes32[])")[0:4]; tests/test_dashboard.py checks it.
  var CLAIM_SELECTOR = "0x3d13f874";
  var RECEIPT_POLL_MS = 500;
  var RECEIPT_TIMEOUT_MS = 180000;

  function word(hex) {
    if (hex.length > 64) { throw new Error("value does not fit in 32 bytes"); }
    return "0".repeat(64 - hex.length) + hex;
  }

  // ABI encoding: the selector, the two static arguments, the offset of the dynamic array
  // (3 words = 0x60), then the array: its length and its elements.
  function encodeClaim(account, cumulativeAmount, proof) {
    var address = String(account).toLowerCase().replace(/^0x/, "");
    if (!/^[0-9a-f]{40}$/.test(address)) { throw new Error("malformed account " + account); }
    if (!/^[0-9]+$/.test(String(cumulativeAmount))) { throw new Error("malformed amount " + cumulativeAmount); }
    var data = CLAIM_SELECTOR + word(address) + word(BigInt(cumulativeAmount).toString(16)) +
      word((3 * 32).toString(16)) + word(proof.length.toString(16));
    proof.forEach(function (node) {
      var hex = String(node).toLowerCase().replace(/^0x/, "");
      if (!/^[0-9a-f]{64}$/.test(hex)) { throw new Error("malformed proof element " + node); }
      data += hex;
    });
    return data;
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function walletMessage(error, doing) {
    var code = error && error.code;
    if (code === 4001) { return "You rejected " + doing + " in the wallet; nothing was sent."; }
    if (code === 4100) { return "The wallet has not authorised this site (" + doing + "); connect it and try again."; }
    if (code === 4900 || code === 4901) { return "The wallet is disconnected from the chain (" + doing + ")."; }
    return "The wallet failed while " + doing + ": " + ((error && error.message) || String(error));
  }

  function start(button) {
    var status = document.getElementById("claim-status");
    var account = button.dataset.account;
    var chainId = Number(button.dataset.chainId);
    var figuresUrl = button.dataset.figuresUrl;

    function say(kind, text) {
      status.className = "status-line " + kind;
      status.textContent = text;
    }

    function show(figures) {
      document.querySelectorAll("[data-figure]").forEach(function (element) {
        var value = figures.shown[element.dataset.figure];
        if (value !== undefined) { element.textContent = value; }
      });
    }

    async function figures() {
      var response = await fetch(figuresUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      var body = await response.json();
      if (!response.ok) { throw new Error(body.message || ("the node answered " + response.status)); }
      return body;
    }

    async function receipt(eth, hash) {
      var deadline = Date.now() + RECEIPT_TIMEOUT_MS;
      while (Date.now() < deadline) {
        var found = await eth.request({ method: "eth_getTransactionReceipt", params: [hash] });
        if (found) { return found; }
        await sleep(RECEIPT_POLL_MS);
      }
      return null;
    }

    async function claim() {
      var eth = window.ethereum;
      if (!eth || typeof eth.request !== "function") {
        say("error", "No wallet found: this browser has no EIP-1193 wallet (window.ethereum). Install one " +
          "(MetaMask, Rabby, Frame...) or claim with `loraledger claim`.");
        return;
      }
      var accounts;
      try {
        accounts = await eth.request({ method: "eth_requestAccounts" });
      } catch (error) {
        say("error", walletMessage(error, "the connection request"));
        return;
      }
      if (!accounts || !accounts.length) {
        say("error", "The wallet shared no account; unlock it and try again.");
        return;
      }
      var from = accounts[0];
      var walletChain = Number.parseInt(await eth.request({ method: "eth_chainId" }), 16);
      if (walletChain !== chainId) {
        say("error", "Wrong network: the wallet is on chain " + walletChain + ", this node's contracts are on chain " +
          chainId + ". Switch the wallet to chain " + chainId + " and try again.");
        return;
      }
      say("info", "Reading the reward proof...");
      var before = await figures();
      show(before);
      if (BigInt(before.claimable) === 0n) {
        say("info", before.proof.length || BigInt(before.cumulativeAmount) > 0n
          ? "Nothing to claim: " + before.shown.claimed + " of " + before.shown.cumulativeAmount + " is already claimed."
          : "Nothing to claim: this account has no rewards in the latest posted epoch.");
        return;
      }
      var data = encodeClaim(before.account, before.cumulativeAmount, before.proof);
      var payer = from.toLowerCase() === account.toLowerCase() ? "" :
        " (sent from " + from + "; the OPEN goes to " + account + ")";
      say("info", "Confirm the claim of " + before.shown.claimable + " in your wallet" + payer + "...");
      var hash;
      try {
        hash = await eth.request({ method: "eth_sendTransaction",
          params: [{ from: from, to: before.distributor, data: data, value: "0x0" }] });
      } catch (error) {
        say("error", walletMessage(error, "the claim transaction"));
        return;
      }
      say("info", "Transaction " + hash + " sent; waiting for it to be mined...");
      var mined = await receipt(eth, hash);
      if (!mined) {
        say("error", "Transaction " + hash + " was not mined within " + RECEIPT_TIMEOUT_MS / 1000 + " s; check it in the wallet.");
        return;
      }
      if (Number.parseInt(mined.status, 16) !== 1) {
        say("error", "The claim reverted on chain (transaction " + hash + "); nothing was paid. Reload and try again.");
        show(await figures());
        return;
      }
      var after = await figures();
      show(after);
      say("ok", "Claimed " + before.shown.claimable + " in transaction " + hash + ". Claimed in all: " +
        after.shown.claimed + "; OPEN balance: " + after.shown.balance + ".");
    }

    button.addEventListener("click", function () {
      button.disabled = true;
      claim().catch(function (error) {
        say("error", "The claim failed: " + ((error && error.message) || String(error)));
      }).finally(function () { button.disabled = false; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("claim");
    if (button) { start(button); }
  });
})();
