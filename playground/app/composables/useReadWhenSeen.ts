import type { Ref } from 'vue'

/**
 * Marks the room read (`useChat().markRead()`) whenever it has unread messages that the reader
 * can see: the page is visible and focused, and the list is scrolled to the newest message.
 */
export function useReadWhenSeen(options: { unread: Readonly<Ref<number>>, markRead: () => boolean, atBottom: Readonly<Ref<boolean>> }) {
  const { unread, markRead, atBottom } = options
  const looking = ref(false)
  const update = () => looking.value = document.visibilityState === 'visible' && document.hasFocus()

  onMounted(() => {
    update()
    document.addEventListener('visibilitychange', update)
    window.addEventListener('focus', update)
    window.addEventListener('blur', update)
  })
  onBeforeUnmount(() => {
    document.removeEventListener('visibilitychange', update)
    window.removeEventListener('focus', update)
    window.removeEventListener('blur', update)
  })

  watch([unread, atBottom, looking], () => {
    if (unread.value > 0 && atBottom.value && looking.value) markRead()
  })
}
